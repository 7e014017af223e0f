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

/* Versions spoken: the session uses the lower of the two sides' highest,
 * and ends if that is below VS_PROTO_MIN_VERSION.  Version 5 added LIST
 * and VERIFY, and the guest size in STATS; a session of version 4 has
 * none of them. */
#define VS_PROTO_VERSION	5
#define VS_PROTO_MIN_VERSION	4
#define VS_PROTO_LIST_VERSION	5
#define VS_PROTO_GUEST_SIZE_VERSION 5	/* STATS carries guest_size */
#define VS_PROTO_MAGIC		"VMSYNC\0\1"
#define VS_PATH_MAX		4096
#define VS_MSG_TEXT_MAX		1024
/* Entries in one DIGESTS or SUMMARIES request: a window at 4 KiB blocks. */
#define VS_PROTO_MAX_ENTRIES	65536
/* Images one SNAPSHOT request names, and the length of each name. */
#define VS_SNAPSHOT_MAX		1024
#define VS_NAME_MAX		255
/* Block sizes both sides take: powers of two in this range.  The largest
 * is also the largest WRITE and the engine's chunk (VS_CHUNK), which is
 * thus a whole number of blocks of any size. */
#define VS_PROTO_MIN_BLOCK	(4u << 10)
#define VS_PROTO_MAX_CHUNK	(4u << 20)
/* The largest image BEGIN may declare. */
#define VS_PROTO_MAX_SIZE	(1ull << 62)
/* LISTED payload bytes a client takes for one LIST, and the bad ranges
 * one VERIFIED carries (more are only counted). */
#define VS_LIST_MAX_BYTES	(16u << 20)
#define VS_VERIFY_MAX_BAD	1000

/* Wire layouts, in bytes: integers are u8, u32 or u64, little-endian. */
enum vs_proto_layout {
	VS_PROTO_MAGIC_LEN = 8,			/* HELLO's magic */
	VS_PROTO_HASH_LEN = 16,			/* an XXH3-128: digest, index
						 * entry or view id */
	VS_PROTO_WRITE_HDR = 8 + 4 + 1,		/* WRITE: offset, length,
						 * codec; the data follows */
	VS_PROTO_RECORD_HDR = 8 + 4 + 4,	/* RECORD: first, n, count */
	VS_PROTO_RECORD_ENTRY = 4 + 2 * VS_PROTO_HASH_LEN, /* RECORD entry:
						 * index, old, new */
	VS_PROTO_LISTED_FIELDS = 8 + 4 + 3 * 8 + 1, /* LISTED after its
						 * strings: time, sizes,
						 * flags */
	VS_PROTO_VERIFIED_FIELDS = 4 + 1 + 4 * 8, /* VERIFIED before its
						 * message: status, flags,
						 * counters */
	VS_PROTO_BAD_ENTRY = 8 + 8 + 1,		/* VERIFIED bad range:
						 * offset, length, reason */
};

_Static_assert(sizeof(VS_PROTO_MAGIC) - 1 == VS_PROTO_MAGIC_LEN,
    "HELLO's magic");
/* Hashes cross the wire as they are stored. */
_Static_assert(sizeof(struct vs_hash) == VS_PROTO_HASH_LEN,
    "a hash on the wire is a struct vs_hash");
/* Every message fits in a frame; the largest are a WRITE of a whole
 * chunk, and a RECORD or hash reply of a whole window. */
_Static_assert(VS_PROTO_WRITE_HDR + VS_PROTO_MAX_CHUNK <= VS_WIRE_MAX,
    "a WRITE of a chunk fits in a frame");
_Static_assert(VS_PROTO_RECORD_HDR + (uint64_t)VS_PROTO_MAX_ENTRIES *
    VS_PROTO_RECORD_ENTRY <= VS_WIRE_MAX,
    "a RECORD of a window fits in a frame");
_Static_assert((uint64_t)VS_PROTO_MAX_ENTRIES * VS_PROTO_HASH_LEN <=
    VS_WIRE_MAX, "a hash reply of a window fits in a frame");
_Static_assert(VS_PROTO_VERIFIED_FIELDS + 4 + VS_MSG_TEXT_MAX + 4 +
    VS_VERIFY_MAX_BAD * VS_PROTO_BAD_ENTRY <= VS_WIRE_MAX,
    "a VERIFIED with every bad range fits in a frame");

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
	VS_MSG_PREFETCH,
	VS_MSG_LIST,		/* version 5 */
	VS_MSG_LISTED,
	VS_MSG_LIST_END,
	VS_MSG_VERIFY,
	VS_MSG_VERIFIED,
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

/* LIST: the backups in a directory of the server, or VERIFY: one backup
 * there (no snapshot directory). */
struct vs_list_req {
	char path[VS_PATH_MAX + 1];		/* DEST or PATH, printable */
	char snapshot_dir[VS_PATH_MAX + 1];	/* LIST: --snapshot-dir or "",
						 * printable */
};

/* Bits of LISTED's flags byte. */
#define VS_LISTED_COMPLETE	1u	/* index clean, describes the file */
#define VS_LISTED_EXCLUSIVE	2u	/* the exclusive bytes are known */

/* One generation of an image, as LISTED carries it. */
struct vs_listed {
	char name[VS_NAME_MAX + 1];	/* the image, no "/" */
	char path[VS_PATH_MAX + 1];	/* the generation, on the server */
	int64_t time_sec;		/* its index's mtime, UTC */
	uint32_t time_nsec;		/* below 10^9 */
	uint64_t virtual_size;		/* bytes of the disk */
	uint64_t allocated;		/* bytes allocated */
	uint64_t exclusive;		/* bytes no other file shares */
	uint32_t flags;			/* VS_LISTED_* */
};

/* Bits of VERIFIED's flags byte. */
#define VS_VERIFIED_COMPLETE	1u	/* an index, and clean */
#define VS_VERIFIED_PARTIAL	2u	/* the index is dirty */
#define VS_VERIFIED_META_BAD	4u	/* qcow2 metadata damaged */
/* Reasons of a bad range: 1 to this (enum vs_verify_why). */
#define VS_VERIFIED_REASONS	4

struct vs_verified_bad {
	uint64_t off, len;		/* bytes of the image */
	uint8_t reason;			/* 1..VS_VERIFIED_REASONS */
};

/* The result of a VERIFY. */
struct vs_verified {
	uint32_t status;		/* enum vs_exit, 0 to 7 */
	uint32_t flags;			/* VS_VERIFIED_* */
	uint64_t virtual_size;		/* bytes of the image */
	uint64_t read_bytes;		/* data read */
	uint64_t bad_bytes;		/* in bad ranges */
	uint64_t more_bad;		/* bad ranges not carried */
	char text[4 * VS_MSG_TEXT_MAX + 1]; /* the error that stopped or
					 * failed the check, escaped;
					 * "" if none */
	uint32_t nbad;			/* 0..VS_VERIFY_MAX_BAD */
	struct vs_verified_bad bad[VS_VERIFY_MAX_BAD]; /* nbad of them */
};

/* Bits of BEGUN's flags byte. */
#define VS_BEGUN_TRUSTED 1u	/* the index is trusted */
#define VS_BEGUN_HASHES 2u	/* untrusted: entries come from hashing */

/* Replies of the target side, as the source side parses them. */
struct vs_begun {
	uint32_t block_size;	/* the target's (vs_block_size_ok) */
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
	uint64_t guest_size;	/* a file view's guest disk, 0: none or not
				 * sent (version 4) */
};

/* Requests of the source side, as the target side parses them (one
 * struct for all, so that the target side's loop takes any of them). */
struct vs_req {
	uint32_t type;		/* VS_MSG_* */
	uint64_t a, b;		/* BEGIN size, source data bytes;
				 * DIGESTS/SUMMARIES/RECORD first entry, n;
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
/* @bs is a block size both sides take: a power of two from
 * VS_PROTO_MIN_BLOCK to VS_PROTO_MAX_CHUNK. */
bool vs_block_size_ok(uint64_t bs);

/* Encoders: queue the message on @w.  On failure -1: reported, unless
 * the stream broke (w->wbroken), which the peer may explain. */
int vs_send_hello(struct vs_wire *w, const struct vs_hello *h);
int vs_send_error(struct vs_wire *w, uint32_t cat, const char *text);
int vs_send_open(struct vs_wire *w, const struct vs_open *o);
int vs_send_opened(struct vs_wire *w, const struct vs_opened *o);
int vs_send_snapshot(struct vs_wire *w, const struct vs_snapshot_req *q);
int vs_send_snapped(struct vs_wire *w, uint32_t taken);
/* LIST and VERIFY (@q->snapshot_dir not sent), and their replies: one
 * LISTED per generation, then LIST_END with their number; one
 * VERIFIED. */
int vs_send_list(struct vs_wire *w, const struct vs_list_req *q);
int vs_send_verify(struct vs_wire *w, const char *path);
int vs_send_listed(struct vs_wire *w, const struct vs_listed *l);
int vs_send_list_end(struct vs_wire *w, uint32_t generations);
int vs_send_verified(struct vs_wire *w, const struct vs_verified *v);
/* Requests, with the fields of struct vs_req they parse into.  BEGIN's
 * @format may be NULL for none. */
int vs_send_begin(struct vs_wire *w, uint64_t size, const char *format,
    uint64_t data_bytes);
int vs_send_digests(struct vs_wire *w, uint64_t first, uint32_t n,
    uint32_t per);
int vs_send_summaries(struct vs_wire *w, uint64_t first, uint32_t n);
/* A block of @len bytes at @off, as @data_len bytes coded with @codec. */
int vs_send_write(struct vs_wire *w, uint64_t off, uint32_t len,
    uint32_t codec, const void *data, size_t data_len);
int vs_send_punch(struct vs_wire *w, uint64_t off, uint64_t len);
/* A hint, no reply: [off, off + len) will be written; read its old bytes
 * ahead. */
int vs_send_prefetch(struct vs_wire *w, uint64_t off, uint64_t len);
/* The entries of [first, first + n) where @old and @new differ; nothing
 * is sent if none does. */
int vs_send_record(struct vs_wire *w, uint64_t first, uint32_t n,
    const struct vs_hash *old, const struct vs_hash *new);
/* @view NULL: none (all zero). */
int vs_send_commit(struct vs_wire *w, const struct vs_hash *view);
/* Replies of the target side. */
int vs_send_begun(struct vs_wire *w, const struct vs_begun *b);
/* A DIGESTS_R or SUMMARIES_R (@type) of @count hashes. */
int vs_send_hashes(struct vs_wire *w, uint32_t type,
    const struct vs_hash *h, size_t count);
int vs_send_done(struct vs_wire *w, const struct vs_done *d);
/* STATS as a session of protocol @version has it. */
int vs_send_stats(struct vs_wire *w, const struct vs_stats_msg *st,
    uint32_t version);

/* Parsers: 0, or -1 if the payload is malformed (nothing reported). */
int vs_parse_hello(const struct vs_msg *m, struct vs_hello *h);
int vs_parse_error(const struct vs_msg *m, struct vs_error_msg *e);
int vs_parse_open(const struct vs_msg *m, struct vs_open *o);
int vs_parse_opened(const struct vs_msg *m, struct vs_opened *o);
int vs_parse_req(const struct vs_msg *m, struct vs_req *r);
/* Spread the entries of a parsed RECORD over old[0..q->b) and
 * new[0..q->b): entries it does not carry are unchanged, zero in both. */
void vs_record_entries(const struct vs_req *q, struct vs_hash *old,
    struct vs_hash *new);
int vs_parse_begun(const struct vs_msg *m, struct vs_begun *b);
/* A DIGESTS_R or SUMMARIES_R (@type) of exactly @count hashes. */
int vs_parse_hashes(const struct vs_msg *m, uint32_t type, size_t count,
    struct vs_hash *out);
int vs_parse_done(const struct vs_msg *m, struct vs_done *d);
int vs_parse_stats(const struct vs_msg *m, struct vs_stats_msg *st);
/* Fills @q; q->images is allocated (free it), NULL on failure. */
int vs_parse_snapshot(const struct vs_msg *m, struct vs_snapshot_req *q);
int vs_parse_snapped(const struct vs_msg *m, uint32_t *taken);
/* LIST or VERIFY (by m->type; VERIFY leaves q->snapshot_dir ""). */
int vs_parse_list(const struct vs_msg *m, struct vs_list_req *q);
int vs_parse_listed(const struct vs_msg *m, struct vs_listed *l);
int vs_parse_list_end(const struct vs_msg *m, uint32_t *generations);
/* Its text escaped, as vs_parse_error()'s. */
int vs_parse_verified(const struct vs_msg *m, struct vs_verified *v);

#endif
