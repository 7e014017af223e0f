#!/usr/bin/env python3
"""vspeer.py - a hostile vmsync protocol peer, for the tests.

  vspeer.py client SCENARIO DIR -- CMD...
      Start CMD (vmsync --server ...) on pipes and play a hostile client:
      push into DIR/t.img, then break the rules as SCENARIO says.  Prints
      one line per message received ("ERROR cat text", "DONE", ...) and
      "eof after S s" when the server hangs up.
  vspeer.py server SCENARIO [host command...]
      Stand in for "ssh host vmsync --server" (vmsync -e): play a hostile
      server on stdin and stdout.  A pull of host:PATH is answered for
      the basename of PATH unless SCENARIO lies about it.  What the
      client sends back is logged to $VSPEER_LOG.
  vspeer.py flip-out N host command...
      Run the command as localsh does, inverting byte N of what the
      client sends it.

The framing (PROTOCOL.md): u32 type, u32 length, payload, XXH32 (seed
0x766d7379) of all that; integers little-endian; strings u32 length and
bytes.
"""
import os
import struct
import subprocess
import sys
import threading
import time

HELLO, ERROR, OPEN, OPENED = 1, 2, 3, 4
BEGIN, BEGUN, DIGESTS, DIGESTS_R, SUMMARIES, SUMMARIES_R = range(16, 22)
WRITE, PUNCH, RECORD, COMMIT, DONE, STATS = range(22, 28)
SNAPSHOT, SNAPPED = 28, 29
NAMES = {v: k for k, v in dict(HELLO=1, ERROR=2, OPEN=3, OPENED=4, BEGIN=16,
         BEGUN=17, DIGESTS=18, DIGESTS_R=19, SUMMARIES=20, SUMMARIES_R=21,
         WRITE=22, PUNCH=23, RECORD=24, COMMIT=25, DONE=26,
         STATS=27, SNAPSHOT=28, SNAPPED=29).items()}
PUSH, PULL = 1, 2
M32 = 0xffffffff
P1, P2, P3, P4, P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393


def rotl(x, r):
    return ((x << r) | (x >> (32 - r))) & M32


def xxh32(data, seed=0x766d7379):
    n, i = len(data), 0
    if n >= 16:
        v = [(seed + P1 + P2) & M32, (seed + P2) & M32, seed,
             (seed - P1) & M32]
        while i + 16 <= n:
            for k in range(4):
                w = struct.unpack_from('<I', data, i + 4 * k)[0]
                v[k] = rotl((v[k] + w * P2) & M32, 13) * P1 & M32
            i += 16
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) +
             rotl(v[3], 18)) & M32
    else:
        h = (seed + P5) & M32
    h = (h + n) & M32
    while i + 4 <= n:
        h = (h + struct.unpack_from('<I', data, i)[0] * P3) & M32
        h = rotl(h, 17) * P4 & M32
        i += 4
    while i < n:
        h = (h + data[i] * P5) & M32
        h = rotl(h, 11) * P1 & M32
        i += 1
    h ^= h >> 15
    h = h * P2 & M32
    h ^= h >> 13
    h = h * P3 & M32
    return h ^ (h >> 16)


def frame(mtype, payload=b'', length=None):
    head = struct.pack('<II', mtype, len(payload) if length is None
                       else length) + payload
    return head + struct.pack('<I', xxh32(head))


def s(text):
    b = text.encode('utf-8', 'surrogateescape') if isinstance(text, str) \
        else text
    return struct.pack('<I', len(b)) + b


def u32(v):
    return struct.pack('<I', v)


def u64(v):
    return struct.pack('<Q', v & (2**64 - 1))


def hello():
    return frame(HELLO, b'VMSYNC\0\1' + u32(4) + u32(0) + u32(1))


class Peer:
    """Frames over a pair of binary streams."""

    def __init__(self, rd, wr):
        self.rd, self.wr = rd, wr

    def send(self, data):
        try:
            self.wr.write(data)
            self.wr.flush()
        except (BrokenPipeError, OSError):
            pass

    def read(self, n):
        out = b''
        while len(out) < n:
            b = self.rd.read(n - len(out))
            if not b:
                return None
            out += b
        return out

    def recv(self):
        """(type, payload), or None at the end of the stream."""
        head = self.read(8)
        if head is None:
            return None
        mtype, n = struct.unpack('<II', head)
        rest = self.read(n + 4)
        if rest is None:
            return None
        return mtype, rest[:n]


def describe(m):
    mtype, p = m
    if mtype == ERROR:
        cat, n = struct.unpack_from('<II', p)
        return 'ERROR %d %r' % (cat, p[8:8 + n].decode('utf-8', 'replace'))
    return NAMES.get(mtype, 'type %d' % mtype)


def open_push(name='t.img', path='images/'):
    return frame(OPEN, u32(PUSH) + u32(0) * 5 + u64(0) + u64(0) + s(path) +
                 s(name) + s('') + s('') + u32(0) + s('') + s(''))


def write(off, length, data=None):
    data = b'\xaa' * length if data is None else data
    return frame(WRITE, u64(off) + u32(length) + b'\0' + data)


def record(first, n, idx, new=b'\xee' * 16):
    return frame(RECORD, u64(first) + u32(n) + u32(1) + u32(idx) +
                 b'\0' * 16 + new)


# Hostile requests after HELLO, OPEN (push) and BEGIN of 1 MiB.
MIB = 1 << 20
CLIENT = {
    'write-far': [write(1 << 60, 4096)],
    'write-end': [write(MIB - 2048, 4096)],
    'write-wrap': [write(2**64 - 2048, 4096)],
    'write-huge': [frame(WRITE, u64(0) + u32(1 << 31) + b'\0' + b'x' * 64)],
    'punch-far': [frame(PUNCH, u64(1 << 62) + u64(4096))],
    'punch-wrap': [frame(PUNCH, u64(4096) + u64(2**64 - 4096))],
    # Entry 2^60 - 256: 16 bytes each after a 4 KiB header wraps to 0.
    'record-far': [record(2**60 - 256, 1, 0)],
    'record-end': [record(15, 2, 1)],
    'digests-far': [frame(DIGESTS, u64(1 << 40) + u32(1) + u32(1))],
    'summaries-end': [frame(SUMMARIES, u64(10) + u32(7))],
    'frame-huge': [frame(COMMIT, b'', length=M32)],
    'frame-checksum': [frame(COMMIT, b'\0' * 16)[:-1] + b'\0'],
}


def snapshot_req(path, names, n=None):
    body = u32(0) + s('') + s(path) + u32(len(names) if n is None else n)
    return frame(SNAPSHOT, body + b''.join(s(x) + b'\1' for x in names))


# SNAPSHOT requests right after HELLO.
SNAPSHOTS = {
    'snapshot-outside': snapshot_req('../', ['x.img']),
    'snapshot-dotdot': snapshot_req('images/', ['..']),
    'snapshot-many': snapshot_req('images/', ['t.img'], n=M32),
}


def play_client(scenario, path, cmd):
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    peer = Peer(proc.stdout, proc.stdin)
    start = time.monotonic()
    if scenario == 'garbage-hello':
        peer.send(hello()[:-1] + b'\0')
    elif scenario in SNAPSHOTS:
        peer.send(hello() + SNAPSHOTS[scenario])
    elif scenario == 'escape-name':
        peer.send(hello() + open_push('x\x1b[2J.img',
                                      path + '\x1b]0;pwned\x07\n/'))
    else:
        peer.send(hello() + open_push(path=path) +
                  frame(BEGIN, u64(MIB) + s('raw') + u64(0)))
    if scenario == 'stall':
        pass        # send nothing more, read on
    elif scenario in CLIENT:
        # Then a request of no known type, not COMMIT: the session ends
        # without rewriting the index header.
        peer.send(b''.join(CLIENT[scenario]) + frame(99))
    while True:
        m = peer.recv()
        if m is None:
            break
        print(describe(m), flush=True)
        if m[0] == DONE:
            proc.stdin.close()      # no next image
    print('eof after %.1f s' % (time.monotonic() - start), flush=True)
    if not proc.stdin.closed:
        proc.stdin.close()
    print('exit %d' % proc.wait(), flush=True)
    if scenario == 'stall':
        time.sleep(float(os.environ.get('VSPEER_HOLD', '0')))


def log(text):
    path = os.environ.get('VSPEER_LOG')
    if path:
        with open(path, 'a') as f:
            f.write(text + '\n')


def play_server(scenario):
    peer = Peer(sys.stdin.buffer, sys.stdout.buffer)
    if peer.recv() is None:
        return
    peer.send(hello())
    if scenario == 'stall':
        time.sleep(60)
        return
    m = peer.recv()
    if m is None or m[0] != OPEN:
        return
    p = m[1]
    direction = struct.unpack_from('<I', p)[0]
    strs, pos = [], 40
    for _ in range(4):      # path, name, format, output
        n = struct.unpack_from('<I', p, pos)[0]
        strs.append(p[pos + 4:pos + 4 + n].decode('utf-8', 'surrogateescape'))
        pos += 4 + n
    path, output = strs[0], strs[3]
    base = os.path.basename(path)
    if output == 'raw' and base.endswith('.qcow2'):
        base = base[:-len('.qcow2')] + '.raw'   # what the server would say
    if scenario == 'error-escape':
        peer.send(frame(ERROR, u32(3) + s('disk\x1b]0;pwned\x07 full\n'
                                          'vmsync: all good\r\x1b[2K')))
        return
    if direction != PULL:
        peer.send(frame(ERROR, u32(1) + s('pull only')))
        return
    name = {'name-evil': 'evil.img', 'name-index': '.vmsync-index',
            'name-escape': 'x\x1b[2J\n.img'}.get(scenario, base)
    peer.send(frame(OPENED, u64(MIB) + u32(0o644) + u64(0) + u64(0) +
                    s(name) + s('')) +
              frame(BEGIN, u64(MIB) + s('raw') + u64(0)))
    m = peer.recv()
    log(describe(m) if m else 'eof')
    if m is None or m[0] != BEGUN:
        return
    data = {
        'write-far': write(1 << 60, 4096),
        'write-end': write(MIB - 2048, 4096),
        'punch-far': frame(PUNCH, u64(1 << 62) + u64(4096)),
        'record-far': record(2**60 - 256, 1, 0),
        'garbage': frame(WRITE, b'x' * 20)[:-1] + b'\0',
    }.get(scenario, write(0, 4096) + record(0, 16, 0))
    peer.send(data + frame(COMMIT, b'\0' * 16))
    m = peer.recv()
    log(describe(m) if m else 'eof')
    if m is not None and m[0] == DONE:
        peer.send(frame(STATS, u64(MIB) + u64(4096) + u64(4096) + u64(0) +
                        u64(1)))
        m = peer.recv()
        log(describe(m) if m else 'eof')


def relay(src, dst, flip=None):
    """Copy src to dst, inverting byte flip; quietly stop when either end
    goes away (the peer hanging up is what the tests provoke)."""
    pos = 0
    try:
        while True:
            b = os.read(src, 65536)
            if not b:
                break
            if flip is not None and pos <= flip < pos + len(b):
                b = bytearray(b)
                b[flip - pos] ^= 0xff
                b = bytes(b)
            pos += len(b)
            while b:
                b = b[os.write(dst, b):]
    except OSError:
        pass
    try:
        os.close(dst)
    except OSError:
        pass


def flip_out(n, command):
    proc = subprocess.Popen(['sh', '-c', ' '.join(command)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    t = threading.Thread(target=relay, args=(0, proc.stdin.fileno(), n),
                         daemon=True)
    t.start()
    relay(proc.stdout.fileno(), 1)
    sys.exit(proc.wait())


def main(argv):
    if len(argv) >= 4 and argv[1] == 'client' and '--' in argv:
        k = argv.index('--')
        play_client(argv[2], argv[3], argv[k + 1:])
    elif len(argv) >= 3 and argv[1] == 'server':
        play_server(argv[2])
    elif len(argv) >= 5 and argv[1] == 'flip-out':
        flip_out(int(argv[2]), argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main(sys.argv)
