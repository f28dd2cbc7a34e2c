/* decide: stage 4. The counts become the signal phase, as one JSON object:
 * {"phase":"NS_GREEN","lanes":[...],"counts":[...],"waiting":{...},"reason":"..."}. */
#include "traffic.h"

int main(void) {
	buf in;
	int counts[MAX_LANES];
	scene s = {0};
	if (read_all(stdin, &in) || counts_read(&in, &s, counts) || decide(stdout, &s, counts))
		return die("decide");
	return finish("decide");
}
