/*
 * replay.c - a main() for a libFuzzer harness without libFuzzer: runs each
 * file named on the command line through LLVMFuzzerTestOneInput once.
 * Built by make check so the harness compiles with any compiler; also
 * replays a crash found by make fuzz under gcc's sanitizers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		uint8_t *buf = NULL;
		size_t len = 0, cap = 0, n;

		if (!f) {
			perror(argv[i]);
			return 1;
		}
		do {
			if (len == cap) {
				uint8_t *b = realloc(buf, cap = cap * 2 + 4096);

				if (!b) {
					perror("replay");
					return 1;
				}
				buf = b;
			}
			n = fread(buf + len, 1, cap - len, f);
			len += n;
		} while (n > 0);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
		printf("%s: %zu bytes replayed\n", argv[i], len);
	}
	return 0;
}
