/* traffic.c: the pipeline's parsers, detector, counter and decision. See
 * traffic.h for the formats. Every parser checks sizes against the bytes it
 * was given before it allocates, so no input makes a stage allocate more
 * than a small multiple of its input. */
#include "traffic.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

char err_msg[256];

int fail(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_msg, sizeof err_msg, fmt, ap);
	va_end(ap);
	return -1;
}

/* context puts what (formatted) before the message in err_msg. The message
 * is copied first: vsnprintf must not read the buffer it writes. */
static int context(const char *fmt, ...) {
	char inner[sizeof err_msg], what[64];
	va_list ap;
	strcpy(inner, err_msg);
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return fail("%s: %s", what, inner);
}

int die(const char *stage) {
	fprintf(stderr, "%s: %s\n", stage, err_msg);
	return 1;
}

int finish(const char *stage) {
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: write output failed\n", stage);
		return 1;
	}
	return 0;
}

int read_all(FILE *f, buf *b) {
	size_t cap = 1 << 16, n = 0;
	unsigned char *p = malloc(cap);
	if (!p)
		return fail("read input: out of memory");
	for (;;) {
		if (n == cap) {
			if (cap >= MAX_INPUT)
				return fail("read input: over %d MiB", MAX_INPUT >> 20);
			cap *= 2;
			unsigned char *q = realloc(p, cap);
			if (!q)
				return fail("read input: out of memory");
			p = q;
		}
		size_t k = fread(p + n, 1, cap - n, f);
		n += k;
		if (k == 0) {
			if (ferror(f))
				return fail("read input: read error");
			break;
		}
	}
	b->p = p;
	b->n = n;
	b->off = 0;
	return 0;
}

static int parse_ll(const char *s, long long hi, long long *out) {
	long long v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > hi)
			return -1;
	}
	*out = v;
	return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
	long long v;
	if (parse_ll(s, hi, &v) || v < lo)
		return -1;
	*out = (int)v;
	return 0;
}

int parse_params(int argc, char **argv, params *p) {
	p->threshold = DEFAULT_THRESHOLD;
	p->min_area = DEFAULT_MIN_AREA;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "threshold=", 10) == 0) {
			if (parse_int(a + 10, 0, 254, &p->threshold))
				return fail("argument %s: want threshold=0..254", a);
		} else if (strncmp(a, "min_area=", 9) == 0) {
			if (parse_int(a + 9, 1, 1 << 24, &p->min_area))
				return fail("argument %s: want min_area=1..16777216", a);
		} else {
			return fail("unknown argument %.40s: want threshold=N or min_area=N", a);
		}
	}
	return 0;
}

/* ---- names and the scene's lines, shared by the PNM comments and the
 * text formats ---- */

static int valid_name(const char *s) {
	size_t n = strlen(s);
	if (n == 0 || n >= MAX_NAME)
		return 0;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* split cuts line (modified in place) at blanks and tabs into at most max
 * tokens; it returns the count, or max+1 when there are more. */
static int split(char *line, char **tok, int max) {
	int n = 0;
	char *p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			return n;
		if (n == max)
			return max + 1;
		tok[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = 0;
	}
}

/* scene_line applies one "lane ..." or "phase ..." line to s. It returns 1
 * when the line was one of those, 0 when it was something else (tok[0]
 * unknown), -1 when it was one of those but malformed. A lane is named,
 * grouped (the lanes that share a green phase) and a rectangle of pixels. */
static int scene_line(char **tok, int n, scene *s) {
	if (n > 0 && strcmp(tok[0], "lane") == 0) {
		if (n != 7)
			return fail("bad lane line: want lane NAME GROUP X0 Y0 X1 Y1");
		if (!valid_name(tok[1]) || !valid_name(tok[2]))
			return fail("bad lane line: names are 1-15 of A-Z a-z 0-9 _ -");
		if (s->nlanes == MAX_LANES)
			return fail("more than %d lanes", MAX_LANES);
		lane *l = &s->lanes[s->nlanes];
		memset(l, 0, sizeof *l);
		strcpy(l->name, tok[1]);
		strcpy(l->group, tok[2]);
		if (parse_int(tok[3], 0, MAX_DIM, &l->x0) || parse_int(tok[4], 0, MAX_DIM, &l->y0) ||
		    parse_int(tok[5], 0, MAX_DIM, &l->x1) || parse_int(tok[6], 0, MAX_DIM, &l->y1) ||
		    l->x0 >= l->x1 || l->y0 >= l->y1)
			return fail("bad lane %s: want 0 <= X0 < X1 <= %d and 0 <= Y0 < Y1 <= %d", l->name, MAX_DIM, MAX_DIM);
		s->nlanes++;
		return 1;
	}
	if (n > 0 && strcmp(tok[0], "phase") == 0) {
		if (n != 2 || !valid_name(tok[1]))
			return fail("bad phase line: want phase NAME");
		strcpy(s->phase, tok[1]);
		return 1;
	}
	return 0;
}

static int lanes_fit(const scene *s, int w, int h) {
	for (int i = 0; i < s->nlanes; i++) {
		const lane *l = &s->lanes[i];
		if (l->x1 > w || l->y1 > h)
			return fail("lane %s (%d %d %d %d) is outside the %dx%d image", l->name, l->x0, l->y0, l->x1, l->y1, w, h);
	}
	return 0;
}

/* ---- netpbm ---- */

static int is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* skip passes whitespace and comments, applying "# lane" and "# phase"
 * comments to s. */
static int skip(buf *b, scene *s) {
	while (b->off < b->n) {
		unsigned char c = b->p[b->off];
		if (is_space(c)) {
			b->off++;
			continue;
		}
		if (c != '#')
			return 0;
		size_t start = ++b->off;
		while (b->off < b->n && b->p[b->off] != '\n' && b->p[b->off] != '\r')
			b->off++;
		if (b->off == b->n)
			return fail("truncated header: a comment runs to the end of the input");
		char line[128];
		size_t len = b->off - start;
		if (len >= sizeof line || memchr(b->p + start, 0, len))
			continue; /* longer than any scene line, or binary: another comment */
		memcpy(line, b->p + start, len);
		line[len] = 0;
		char *tok[8];
		int n = split(line, tok, 7);
		if (n <= 7 && scene_line(tok, n, s) < 0)
			return -1;
		if (n > 7 && (strcmp(tok[0], "lane") == 0 || strcmp(tok[0], "phase") == 0))
			return fail("bad %s comment: too many fields", tok[0]);
	}
	return 0;
}

static int header_uint(buf *b, scene *s, const char *what, int lo, int hi, int *out) {
	if (skip(b, s))
		return -1;
	if (b->off == b->n)
		return fail("truncated header: no %s", what);
	long v = 0;
	size_t start = b->off;
	while (b->off < b->n && b->p[b->off] >= '0' && b->p[b->off] <= '9') {
		v = v * 10 + (b->p[b->off] - '0');
		if (v > hi)
			return fail("%s over %d", what, hi);
		b->off++;
	}
	if (b->off == start)
		return fail("bad header: %s is not a number", what);
	if (v < lo)
		return fail("%s %ld: want %d..%d", what, v, lo, hi);
	if (b->off == b->n)
		return fail("truncated header after %s", what);
	unsigned char c = b->p[b->off];
	if (!is_space(c) && c != '#')
		return fail("bad header: unexpected byte 0x%02x after %s", c, what);
	*out = (int)v;
	return 0;
}

int pnm_read(buf *b, gray *g, scene *s) {
	if (b->n - b->off < 2)
		return fail("truncated input: no netpbm magic number");
	const unsigned char *m = b->p + b->off;
	if (m[0] != 'P' || (m[1] != '5' && m[1] != '6')) {
		if (m[0] == 'P' && m[1] >= '1' && m[1] <= '7')
			return fail("netpbm format P%c is not supported: want binary P5 (PGM) or P6 (PPM)", m[1]);
		return fail("not a netpbm image: want P5 (PGM) or P6 (PPM)");
	}
	int chans = m[1] == '6' ? 3 : 1;
	b->off += 2;
	int w, h, maxval;
	if (header_uint(b, s, "width", 1, MAX_DIM, &w) || header_uint(b, s, "height", 1, MAX_DIM, &h) ||
	    header_uint(b, s, "maxval", 1, 65535, &maxval))
		return -1;
	if (b->p[b->off] == '#')
		return fail("bad header: a comment right after maxval (want one whitespace byte)");
	b->off++; /* the one whitespace byte before the raster */
	size_t bps = maxval > 255 ? 2 : 1;
	size_t need = (size_t)w * h * chans * bps;
	size_t have = b->n - b->off;
	if (have < need)
		return fail("truncated raster: %dx%d P%c needs %zu bytes, %zu left", w, h, chans == 3 ? '6' : '5', need, have);
	g->w = w;
	g->h = h;
	g->px = malloc((size_t)w * h);
	if (!g->px)
		return fail("out of memory for a %dx%d image", w, h);
	const unsigned char *r = b->p + b->off;
	if (maxval == 255 && chans == 1) {
		/* The common case, and what decode writes: the raster is the image. */
		memcpy(g->px, r, need);
		b->off += need;
		return 0;
	}
	for (size_t i = 0; i < (size_t)w * h; i++) {
		unsigned v[3];
		for (int c = 0; c < chans; c++) {
			unsigned x = bps == 2 ? (unsigned)r[0] << 8 | r[1] : r[0];
			r += bps;
			if (x > (unsigned)maxval)
				return fail("sample %u over maxval %d at pixel %zu", x, maxval, i);
			v[c] = (x * 255 + (unsigned)maxval / 2) / (unsigned)maxval;
		}
		/* ITU-R BT.601 luma in 8-bit fixed point: 77+150+29 = 256. */
		g->px[i] = chans == 1 ? v[0] : (77 * v[0] + 150 * v[1] + 29 * v[2] + 128) >> 8;
	}
	b->off += need;
	return 0;
}

int pnm_read_pair(buf *b, gray *bg, gray *fr, scene *s) {
	if (pnm_read(b, bg, s))
		return context("background image");
	if (b->off == b->n)
		return fail("one image only: want two, the background then the frame");
	if (pnm_read(b, fr, s))
		return context("frame image");
	if (b->off != b->n)
		return fail("%zu bytes after the second image", b->n - b->off);
	if (bg->w != fr->w || bg->h != fr->h)
		return fail("background is %dx%d, frame %dx%d: want one size", bg->w, bg->h, fr->w, fr->h);
	return lanes_fit(s, fr->w, fr->h);
}

int pgm_write(FILE *f, const gray *g, const scene *s) {
	fputs("P5\n", f);
	if (s) {
		for (int i = 0; i < s->nlanes; i++) {
			const lane *l = &s->lanes[i];
			fprintf(f, "# lane %s %s %d %d %d %d\n", l->name, l->group, l->x0, l->y0, l->x1, l->y1);
		}
		if (s->phase[0])
			fprintf(f, "# phase %s\n", s->phase);
	}
	fprintf(f, "%d %d\n255\n", g->w, g->h);
	fwrite(g->px, 1, (size_t)g->w * g->h, f);
	return 0;
}

/* ---- detection ---- */

static int push_blob(blobs *out, const blob *b) {
	if (out->n == out->cap) {
		int cap = out->cap ? out->cap * 2 : 64;
		blob *v = realloc(out->v, (size_t)cap * sizeof *v);
		if (!v)
			return fail("out of memory for %d blobs", cap);
		out->v = v;
		out->cap = cap;
	}
	out->v[out->n++] = *b;
	return 0;
}

int detect(const gray *bg, const gray *fr, const params *p, blobs *out) {
	if (bg->w != fr->w || bg->h != fr->h)
		return fail("background is %dx%d, frame %dx%d: want one size", bg->w, bg->h, fr->w, fr->h);
	int w = fr->w, h = fr->h;
	size_t n = (size_t)w * h;
	/* mask: 0 unchanged, 1 changed, 2 changed and already in a blob. */
	unsigned char *mask = malloc(n);
	int *queue = malloc(n * sizeof *queue);
	if (!mask || !queue)
		return fail("out of memory for a %dx%d frame", w, h);
	for (size_t i = 0; i < n; i++) {
		int d = (int)fr->px[i] - (int)bg->px[i];
		mask[i] = (d < 0 ? -d : d) > p->threshold;
	}
	out->n = 0;
	for (size_t i = 0; i < n; i++) {
		if (mask[i] != 1)
			continue;
		/* Breadth-first fill of the 8-connected component: an explicit
		 * queue, since a wasm call stack is too small for recursion. */
		blob b = {0, 0, 0, w, h, 0, 0};
		size_t head = 0, tail = 0;
		queue[tail++] = (int)i;
		mask[i] = 2;
		while (head < tail) {
			int k = queue[head++], x = k % w, y = k / w;
			b.area++;
			b.sumx += x;
			b.sumy += y;
			if (x < b.x0) b.x0 = x;
			if (y < b.y0) b.y0 = y;
			if (x + 1 > b.x1) b.x1 = x + 1;
			if (y + 1 > b.y1) b.y1 = y + 1;
			for (int dy = -1; dy <= 1; dy++) {
				for (int dx = -1; dx <= 1; dx++) {
					int nx = x + dx, ny = y + dy;
					if (nx < 0 || ny < 0 || nx >= w || ny >= h)
						continue;
					int j = ny * w + nx;
					if (mask[j] == 1) {
						mask[j] = 2;
						queue[tail++] = j;
					}
				}
			}
		}
		if (b.area >= p->min_area && push_blob(out, &b))
			return -1;
	}
	free(mask);
	free(queue);
	return 0;
}

/* ---- text formats ---- */

/* next_line copies the next line of b into line (without the newline) and
 * returns 1, or returns 0 at the end of the input, -1 for a long line. */
static int next_line(buf *b, char *line, size_t max) {
	if (b->off == b->n)
		return 0;
	size_t start = b->off;
	while (b->off < b->n && b->p[b->off] != '\n')
		b->off++;
	size_t len = b->off - start;
	if (b->off < b->n)
		b->off++;
	if (len >= max)
		return fail("line over %zu bytes", max - 1);
	memcpy(line, b->p + start, len);
	line[len] = 0;
	if (memchr(line, 0, len))
		return fail("a NUL byte in a text line");
	return 1;
}

int blobs_write(FILE *f, int w, int h, const scene *s, const blobs *bl) {
	fprintf(f, "blobs %d %d\n", w, h);
	for (int i = 0; i < s->nlanes; i++) {
		const lane *l = &s->lanes[i];
		fprintf(f, "lane %s %s %d %d %d %d\n", l->name, l->group, l->x0, l->y0, l->x1, l->y1);
	}
	if (s->phase[0])
		fprintf(f, "phase %s\n", s->phase);
	for (int i = 0; i < bl->n; i++) {
		const blob *b = &bl->v[i];
		fprintf(f, "blob %lld %lld %lld %d %d %d %d\n", b->area, b->sumx, b->sumy, b->x0, b->y0, b->x1, b->y1);
	}
	return 0;
}

int blobs_read(buf *b, int *w, int *h, scene *s, blobs *bl) {
	char line[160], *tok[9];
	int r = next_line(b, line, sizeof line);
	if (r < 0)
		return -1;
	if (r == 0 || split(line, tok, 3) != 3 || strcmp(tok[0], "blobs") != 0 || parse_int(tok[1], 1, MAX_DIM, w) ||
	    parse_int(tok[2], 1, MAX_DIM, h))
		return fail("not a blob list: want a first line \"blobs W H\"");
	long long npx = (long long)*w * *h;
	bl->n = 0;
	for (int ln = 2; (r = next_line(b, line, sizeof line)) > 0; ln++) {
		int n = split(line, tok, 8);
		if (n == 0)
			continue;
		int k = n <= 8 ? scene_line(tok, n, s) : 0;
		if (k < 0)
			return context("line %d", ln);
		if (k == 1)
			continue;
		long long v[7];
		int ok = n == 8 && strcmp(tok[0], "blob") == 0;
		for (int i = 0; ok && i < 7; i++)
			ok = parse_ll(tok[i + 1], i < 3 ? npx * MAX_DIM : MAX_DIM, &v[i]) == 0;
		if (!ok)
			return fail("line %d: want blob AREA SUMX SUMY X0 Y0 X1 Y1", ln);
		blob bb = {v[0], v[1], v[2], (int)v[3], (int)v[4], (int)v[5], (int)v[6]};
		if (bb.area < 1 || bb.area > npx || bb.x0 >= bb.x1 || bb.y0 >= bb.y1 || bb.x1 > *w || bb.y1 > *h)
			return fail("line %d: blob outside the %dx%d frame or empty", ln, *w, *h);
		if (push_blob(bl, &bb))
			return -1;
	}
	if (r < 0)
		return -1;
	return lanes_fit(s, *w, *h);
}

int count(const scene *s, const blobs *bl, int counts[MAX_LANES]) {
	if (s->nlanes == 0)
		return fail("no lanes: give \"# lane NAME GROUP X0 Y0 X1 Y1\" comments in an image header");
	memset(counts, 0, MAX_LANES * sizeof counts[0]);
	for (int i = 0; i < bl->n; i++) {
		const blob *b = &bl->v[i];
		/* The centroid (sumx/area, sumy/area), compared exactly. */
		for (int j = 0; j < s->nlanes; j++) {
			const lane *l = &s->lanes[j];
			if (b->sumx >= (long long)l->x0 * b->area && b->sumx < (long long)l->x1 * b->area &&
			    b->sumy >= (long long)l->y0 * b->area && b->sumy < (long long)l->y1 * b->area) {
				counts[j]++;
				break;
			}
		}
	}
	return 0;
}

int counts_write(FILE *f, const scene *s, const int counts[MAX_LANES]) {
	fputs("counts\n", f);
	for (int i = 0; i < s->nlanes; i++)
		fprintf(f, "count %s %s %d\n", s->lanes[i].name, s->lanes[i].group, counts[i]);
	if (s->phase[0])
		fprintf(f, "phase %s\n", s->phase);
	return 0;
}

int counts_read(buf *b, scene *s, int counts[MAX_LANES]) {
	char line[160], *tok[5];
	int r = next_line(b, line, sizeof line);
	if (r < 0)
		return -1;
	if (r == 0 || split(line, tok, 1) != 1 || strcmp(tok[0], "counts") != 0)
		return fail("not a count list: want a first line \"counts\"");
	for (int ln = 2; (r = next_line(b, line, sizeof line)) > 0; ln++) {
		int n = split(line, tok, 4);
		if (n == 0)
			continue;
		if (n == 2 && strcmp(tok[0], "phase") == 0) {
			if (scene_line(tok, n, s) < 0)
				return context("line %d", ln);
			continue;
		}
		if (n != 4 || strcmp(tok[0], "count") != 0)
			return fail("line %d: want count NAME GROUP N or phase NAME", ln);
		if (s->nlanes == MAX_LANES)
			return fail("line %d: more than %d lanes", ln, MAX_LANES);
		if (!valid_name(tok[1]) || !valid_name(tok[2]) || parse_int(tok[3], 0, 1 << 24, &counts[s->nlanes]))
			return fail("line %d: want count NAME GROUP N (names of A-Z a-z 0-9 _ -, N a count)", ln);
		lane *l = &s->lanes[s->nlanes++];
		memset(l, 0, sizeof *l);
		strcpy(l->name, tok[1]);
		strcpy(l->group, tok[2]);
	}
	if (r < 0)
		return -1;
	if (s->nlanes == 0)
		return fail("no counts: the list names no lane");
	return 0;
}

/* decide gives the green to the group with the most vehicles waiting; a tie
 * keeps the phase now on when it is one of the tied groups, else goes to the
 * first tied group in lane order. */
int decide(FILE *f, const scene *s, const int counts[MAX_LANES]) {
	char groups[MAX_LANES][MAX_NAME];
	long waiting[MAX_LANES] = {0};
	int ng = 0;
	for (int i = 0; i < s->nlanes; i++) {
		int g = 0;
		while (g < ng && strcmp(groups[g], s->lanes[i].group) != 0)
			g++;
		if (g == ng)
			strcpy(groups[ng++], s->lanes[i].group);
		waiting[g] += counts[i];
	}
	if (ng == 0)
		return fail("no lanes to decide on");
	int best = 0, tie = 0;
	for (int g = 1; g < ng; g++) {
		if (waiting[g] > waiting[best]) {
			best = g;
			tie = 0;
		} else if (waiting[g] == waiting[best]) {
			tie = 1;
		}
	}
	char reason[512];
	size_t rl = 0;
	if (tie) {
		int kept = -1;
		for (int g = 0; g < ng; g++) {
			char ph[MAX_NAME + 8];
			snprintf(ph, sizeof ph, "%s_GREEN", groups[g]);
			if (waiting[g] == waiting[best] && strcmp(ph, s->phase) == 0)
				kept = g;
		}
		if (kept >= 0) {
			best = kept;
			rl = snprintf(reason, sizeof reason, "tie at %ld waiting: %s_GREEN kept", waiting[best], groups[best]);
		} else {
			rl = snprintf(reason, sizeof reason, "tie at %ld waiting: first group %s", waiting[best], groups[best]);
		}
	} else {
		rl = snprintf(reason, sizeof reason, "%s %ld waiting vs", groups[best], waiting[best]);
		const char *sep = " ";
		for (int g = 0; g < ng; g++) {
			if (g == best)
				continue;
			rl += snprintf(reason + rl, sizeof reason - rl, "%s%s %ld", sep, groups[g], waiting[g]);
			sep = ", ";
		}
	}
	fprintf(f, "{\"phase\":\"%s_GREEN\",\"lanes\":[", groups[best]);
	for (int i = 0; i < s->nlanes; i++)
		fprintf(f, "%s\"%s\"", i ? "," : "", s->lanes[i].name);
	fputs("],\"counts\":[", f);
	for (int i = 0; i < s->nlanes; i++)
		fprintf(f, "%s%d", i ? "," : "", counts[i]);
	fputs("],\"waiting\":{", f);
	for (int g = 0; g < ng; g++)
		fprintf(f, "%s\"%s\":%ld", g ? "," : "", groups[g], waiting[g]);
	fprintf(f, "},\"reason\":\"%s\"}\n", reason);
	return 0;
}
