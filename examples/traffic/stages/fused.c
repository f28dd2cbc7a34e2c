/* traffic: the four stages fused in one module. It reads what decode reads
 * and writes what decide writes, for the same input byte for byte, without
 * the three hand-offs in between. Arguments as for detect. */
#include "traffic.h"

int main(int argc, char **argv) {
	buf in;
	gray bg, fr;
	scene s = {0};
	params p;
	blobs bl = {0};
	int counts[MAX_LANES];
	if (parse_params(argc, argv, &p) || read_all(stdin, &in) || pnm_read_pair(&in, &bg, &fr, &s) ||
	    detect(&bg, &fr, &p, &bl) || count(&s, &bl, counts) || decide(stdout, &s, counts))
		return die("traffic");
	return finish("traffic");
}
