/* decode: stage 1. Two binary netpbm images (P5 or P6, any maxval), the
 * background then the frame, become two 8-bit grayscale P5 images; the
 * scene comments travel on in the first header. */
#include "traffic.h"

int main(void) {
	buf in;
	gray bg, fr;
	scene s = {0};
	if (read_all(stdin, &in) || pnm_read_pair(&in, &bg, &fr, &s))
		return die("decode");
	pgm_write(stdout, &bg, &s);
	pgm_write(stdout, &fr, NULL);
	return finish("decode");
}
