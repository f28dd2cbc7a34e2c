/* cjson.c: a WASI command in C (wasm32-wasi, wasi-libc) for the byte paths.
 * It reads JSON on stdin and writes {"bytes","numbers","sum","args"} on
 * stdout: how many bytes came in, and the count and sum of the integers in
 * the text (a scanner, not a parser: enough to show the input arrived
 * whole). argv[1], if given, is the exit code, said on stderr first. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
	long bytes = 0, count = 0, sum = 0, cur = 0;
	int in = 0, neg = 0, prev = 0, c;
	while ((c = getchar()) != EOF) {
		bytes++;
		if (c >= '0' && c <= '9') {
			if (!in) {
				in = 1;
				neg = prev == '-';
				cur = 0;
			}
			cur = cur * 10 + (c - '0');
		} else if (in) {
			in = 0;
			count++;
			sum += neg ? -cur : cur;
		}
		prev = c;
	}
	if (in) {
		count++;
		sum += neg ? -cur : cur;
	}
	printf("{\"bytes\":%ld,\"numbers\":%ld,\"sum\":%ld,\"args\":%d}\n", bytes, count, sum, argc - 1);
	if (argc > 1) {
		int code = atoi(argv[1]);
		fprintf(stderr, "cjson: exit %d\n", code);
		return code;
	}
	return 0;
}
