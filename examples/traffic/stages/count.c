/* count: stage 3. The blob list becomes a count per lane: a blob is in the
 * first lane whose rectangle holds its centroid. */
#include "traffic.h"

int main(void) {
	buf in;
	int w, h, counts[MAX_LANES];
	scene s = {0};
	blobs bl = {0};
	if (read_all(stdin, &in) || blobs_read(&in, &w, &h, &s, &bl) || count(&s, &bl, counts))
		return die("count");
	counts_write(stdout, &s, counts);
	return finish("count");
}
