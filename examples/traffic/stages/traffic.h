/*
 * traffic.h: the smart-traffic pipeline's shared code. Each stage (decode,
 * detect, count, decide) and the fused module are one small main around
 * these functions. Every stage is a WASI command: input on stdin, output on
 * stdout, a message on stderr and exit status 1 for bad input.
 *
 * Formats (all defined here, read and written only here):
 *
 *   pipeline input   two binary netpbm images, P5 (PGM) or P6 (PPM), maxval
 *                    1..65535: the background, then the current frame, of
 *                    one size. Header comments carry the scene:
 *                      # lane NAME GROUP X0 Y0 X1 Y1   (pixels [X0,X1)x[Y0,Y1))
 *                      # phase GROUP_GREEN              (the phase now on)
 *   decode  -> detect   the same, as two P5 images with maxval 255.
 *   detect  -> count    text: "blobs W H", the lane and phase lines
 *                       (without "# "), then one line per blob:
 *                       "blob AREA SUMX SUMY X0 Y0 X1 Y1", centroid
 *                       (SUMX/AREA, SUMY/AREA), bounding box [X0,X1)x[Y0,Y1).
 *   count   -> decide   text: "counts", then "count NAME GROUP N" per lane
 *                       in input order, and the phase line.
 *   decide  -> client   one JSON object: phase, lanes, counts, reason.
 */
#ifndef TRAFFIC_H
#define TRAFFIC_H

#include <stddef.h>
#include <stdio.h>

enum {
	MAX_DIM = 4096,       /* width and height at most */
	MAX_LANES = 16,
	MAX_NAME = 16,        /* lane, group and phase names, with the NUL */
	MAX_INPUT = 64 << 20, /* bytes read from stdin at most */
	DEFAULT_THRESHOLD = 30,
	DEFAULT_MIN_AREA = 12,
};

/* An 8-bit grayscale image. */
typedef struct {
	int w, h;
	unsigned char *px; /* w*h, row-major */
} gray;

typedef struct {
	char name[MAX_NAME], group[MAX_NAME];
	int x0, y0, x1, y1;
} lane;

/* The scene: what travels with the frames from stage to stage. */
typedef struct {
	lane lanes[MAX_LANES];
	int nlanes;
	char phase[MAX_NAME]; /* "" when none was given */
} scene;

/* A connected component of changed pixels. */
typedef struct {
	long long area, sumx, sumy; /* long is 32 bits on wasm32 */
	int x0, y0, x1, y1;
} blob;

typedef struct {
	blob *v;
	int n, cap;
} blobs;

/* Detection settings, from argv: threshold=N min_area=N. */
typedef struct {
	int threshold, min_area;
} params;

/* Input being parsed. */
typedef struct {
	const unsigned char *p;
	size_t n, off;
} buf;

/* Every function returning int returns 0 on success and -1 on failure,
 * with the reason in err_msg. */
extern char err_msg[256];
int fail(const char *fmt, ...);

int read_all(FILE *f, buf *b);
int parse_params(int argc, char **argv, params *p);

int pnm_read(buf *b, gray *g, scene *s);
int pnm_read_pair(buf *b, gray *bg, gray *fr, scene *s);
int pgm_write(FILE *f, const gray *g, const scene *s);

int detect(const gray *bg, const gray *fr, const params *p, blobs *out);
int blobs_write(FILE *f, int w, int h, const scene *s, const blobs *bl);
int blobs_read(buf *b, int *w, int *h, scene *s, blobs *bl);

int count(const scene *s, const blobs *bl, int counts[MAX_LANES]);
int counts_write(FILE *f, const scene *s, const int counts[MAX_LANES]);
int counts_read(buf *b, scene *s, int counts[MAX_LANES]);

int decide(FILE *f, const scene *s, const int counts[MAX_LANES]);

/* finish flushes stdout and returns main's exit status; die prints
 * "stage: err_msg" on stderr and returns 1. */
int finish(const char *stage);
int die(const char *stage);

#endif
