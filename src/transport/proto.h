/*
 * proto.h - messages of the remote protocol (see PROTOCOL.md): types,
 * limits, and a checked parser for every message a peer can receive.
 */
#ifndef VS_PROTO_H
#define VS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"
#include "../hash.h"

#define VS_PROTO_VERSION	4
#define VS_PROTO_MAGIC		"VMSYNC\0\1"
#define VS_PATH_MAX		4096
#define VS_MSG_TEXT_MAX		1024
/* Entries in one DIGESTS or SUMMARIES request: a window at 4 KiB blocks. */
#define VS_PROTO_MAX_ENTRIES	65536
/* Images one SNAPSHOT request names, and the length of each name. */
#define VS_SNAPSHOT_MAX		1024
#define VS_NAME_MAX		255

enum vs_msg_type {
	VS_MSG_HELLO = 1,
	VS_MSG_ERROR,
	VS_MSG_OPEN,
	VS_MSG_OPENED,
	VS_MSG_BEGIN = 16,
	VS_MSG_BEGUN,
	VS_MSG_DIGESTS,
	VS_MSG_DIGESTS_R,
	VS_MSG_SUMMARIES,
	VS_MSG_SUMMARIES_R,
	VS_MSG_WRITE,
	VS_MSG_PUNCH,
	VS_MSG_RECORD,
	VS_MSG_COMMIT,
	VS_MSG_DONE,
	VS_MSG_STATS,
	VS_MSG_SNAPSHOT,
	VS_MSG_SNAPPED,
};

/* Codecs of WRITE payloads; bits in HELLO. */
enum vs_codec_id {
	VS_WIRE_NONE = 0,
	VS_WIRE_ZLIB = 1,
	VS_WIRE_ZSTD = 2,
};

enum vs_direction {
	VS_PUSH = 1,		/* the server holds the target */
	VS_PULL = 2,		/* the server holds the source */
};

#define VS_OPEN_DRY_RUN		1u
#define VS_OPEN_CHECKSUM	2u
#define VS_OPEN_SNAPSHOT	4u	/* push: the run ends with SNAPSHOT */
#define VS_OPEN_LIVE		8u	/* pull: --source-snapshot=never */
#define VS_OPEN_FORCE		16u	/* push: --force */

struct vs_hello {
	uint32_t version;	/* highest version spoken */
	uint32_t codecs;	/* 1 << enum vs_codec_id, for each one known */
	uint32_t hash;		/* 1: XXH3-128 */
};

struct vs_open {
	uint32_t direction;		/* enum vs_direction */
	uint32_t flags;			/* VS_OPEN_* */
	uint32_t block_size;		/* 0: the index's or the default */
	uint32_t codec;			/* enum vs_codec_id for WRITE */
	int32_t level;			/* compression level, 0: default */
	uint32_t mode;			/* source st_mode (push) */
	int64_t mtime_sec, mtime_nsec;	/* source mtime (push) */
	char path[VS_PATH_MAX + 1];	/* push: DEST; pull: SRC */
	char name[VS_PATH_MAX + 1];	/* push: target name under DEST */
	char format[16];		/* pull: -f, "" for auto */
	char output[16];		/* pull: -O, "" for the default */
	uint32_t keep;			/* push: --keep, 0: keep all */
	char snapshot_dir[VS_PATH_MAX + 1]; /* push: --snapshot-dir or "" */
	char recorded[16];		/* pull: the format the client's
					 * target records, "" for none */
};

struct vs_opened {
	uint64_t size;			/* pull: the source's size */
	uint32_t mode;			/* pull: source st_mode */
	int64_t mtime_sec, mtime_nsec;	/* pull: source mtime */
	char name[VS_PATH_MAX + 1];	/* pull: target name; push: target */
	char format[16];		/* push: the format the target
					 * records, "" for none; pull: the
					 * format the source looks like
					 * but was not confirmed as, so
					 * copied as raw ("" if none) */
};

struct vs_error_msg {
	uint32_t cat;				/* enum vs_exit */
	char text[4 * VS_MSG_TEXT_MAX + 1];	/* the one-line message,
						 * escaped (vs_escape) */
};

/* One image of a SNAPSHOT request: a target name as OPEN gave it. */
struct vs_snapshot_name {
	char name[VS_NAME_MAX + 1];	/* "" when DEST names the file */
	bool synced;			/* the run synced it */
};

/* The end of a push run with --snapshot: snapshot, once per subvolume,
 * the targets DEST/NAME of the run. */
struct vs_snapshot_req {
	uint32_t keep;				/* --keep, 0: keep all */
	char dir[VS_PATH_MAX + 1];		/* --snapshot-dir or "" */
	char path[VS_PATH_MAX + 1];		/* DEST, as in OPEN */
	uint32_t n;				/* images, 1..VS_SNAPSHOT_MAX */
	struct vs_snapshot_name *images;	/* n of them */
};

/* Bits of BEGUN's flags byte. */
#define VS_BEGUN_TRUSTED 1u	/* the index is trusted */
#define VS_BEGUN_HASHES 2u	/* untrusted: entries come from hashing */

/* Replies of the target side, as the source side parses them. */
struct vs_begun {
	uint32_t block_size;	/* the target's: a power of two, 4K-4M */
	uint64_t seed;		/* of its index hashes */
	bool trusted;		/* its index is trusted */
	bool hashes_target;	/* it hashes its blocks when not trusted */
	char state[16];		/* index state, for statistics */
	struct vs_hash view;	/* source view the index was synced from */
};

struct vs_done {
	uint64_t read, written;		/* target bytes read, written */
	uint64_t punched, unchanged;	/* punched, found equal */
};

/* What the source side of a pull reports at the end. */
struct vs_stats_msg {
	uint64_t virtual_size;	/* bytes of the source disk */
	uint64_t data_bytes;	/* mapped as data */
	uint64_t read_bytes;	/* read from the source */
	uint64_t skipped_bytes;	/* not read thanks to change detection */
	uint64_t usec;		/* elapsed microseconds */
};

/* Requests of the source side, as the target side parses them. */
struct vs_req {
	uint32_t type;		/* VS_MSG_* */
	uint64_t a, b;		/* BEGIN size, source data bytes;
				 * DIGESTS/SUMMARIES first, n;
				 * WRITE/PUNCH offset, length */
	uint32_t per;		/* DIGESTS group size */
	uint32_t codec;		/* WRITE codec */
	const uint8_t *data;	/* WRITE payload, RECORD entries */
	size_t data_len;	/* its bytes */
	uint32_t count;		/* RECORD entries */
	struct vs_hash view;	/* COMMIT: the source view synced */
	char format[16];	/* BEGIN: what the source is read as */
};

/* The HELLO this build sends: its version, codecs and hash. */
struct vs_hello vs_hello_local(void);

/* Encoders: queue the message on @w. */
int vs_send_hello(struct vs_wire *w, const struct vs_hello *h);
int vs_send_error(struct vs_wire *w, uint32_t cat, const char *text);
int vs_send_open(struct vs_wire *w, const struct vs_open *o);
int vs_send_opened(struct vs_wire *w, const struct vs_opened *o);
int vs_send_snapshot(struct vs_wire *w, const struct vs_snapshot_req *q);
int vs_send_snapped(struct vs_wire *w, uint32_t taken);

/* Parsers: 0, or -1 if the payload is malformed (nothing reported). */
int vs_parse_hello(const struct vs_msg *m, struct vs_hello *h);
int vs_parse_error(const struct vs_msg *m, struct vs_error_msg *e);
int vs_parse_open(const struct vs_msg *m, struct vs_open *o);
int vs_parse_opened(const struct vs_msg *m, struct vs_opened *o);
int vs_parse_req(const struct vs_msg *m, struct vs_req *r);
int vs_parse_begun(const struct vs_msg *m, struct vs_begun *b);
/* A DIGESTS_R or SUMMARIES_R (@type) of exactly @count hashes. */
int vs_parse_hashes(const struct vs_msg *m, uint32_t type, size_t count,
    struct vs_hash *out);
int vs_parse_done(const struct vs_msg *m, struct vs_done *d);
int vs_parse_stats(const struct vs_msg *m, struct vs_stats_msg *st);
/* Fills @q; q->images is allocated (free it), NULL on failure. */
int vs_parse_snapshot(const struct vs_msg *m, struct vs_snapshot_req *q);
int vs_parse_snapped(const struct vs_msg *m, uint32_t *taken);

#endif
