/* detect: stage 2. The grayscale background and frame become the list of
 * blobs: 8-connected components of pixels that differ from the background
 * by more than threshold (argument threshold=N, default 30), of at least
 * min_area pixels (min_area=N, default 12). */
#include "traffic.h"

int main(int argc, char **argv) {
	buf in;
	gray bg, fr;
	scene s = {0};
	params p;
	blobs bl = {0};
	if (parse_params(argc, argv, &p) || read_all(stdin, &in) || pnm_read_pair(&in, &bg, &fr, &s) ||
	    detect(&bg, &fr, &p, &bl))
		return die("detect");
	blobs_write(stdout, fr.w, fr.h, &s, &bl);
	return finish("detect");
}
