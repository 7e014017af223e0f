#!/usr/bin/env python3
# mksparse.py OUT NAME REALSIZE RUN...: write OUT, a tar holding one pax
# 1.0 sparse entry NAME of REALSIZE bytes, each RUN "OFF:LEN" of data
# filled with 'A' (or one RUN "-N": N runs of 1 byte, 8 bytes apart).
# Nothing is checked: the map may be as wrong as the test wants.
import sys
out, name, realsize = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
runs = [tuple(int(x) for x in r.split(":")) for r in sys.argv[4:]]
if runs and runs[0][0] < 0:		# -N: N runs of 1 byte, 8 apart
    runs = [(i * 8, 1) for i in range(-runs[0][0])]
def hdr(n, size, t):
    h = bytearray(512)
    h[0:len(n)] = n; h[100:108] = b'0000644\0'; h[108:116] = b'0000000\0'
    h[116:124] = b'0000000\0'; h[124:136] = b'%011o\0' % size
    h[136:148] = b'%011o\0' % 1700000000; h[148:156] = b' ' * 8
    h[156:157] = t; h[257:263] = b'ustar\0'; h[263:265] = b'00'
    h[148:156] = b'%06o\0 ' % sum(h); return bytes(h)
pad = lambda b: b + b'\0' * (-len(b) % 512)
def rec(k, v):
    body = b' %s=%s\n' % (k, v); n = len(body) + 2
    while len(str(n)) + len(body) != n: n += 1
    return b'%d' % n + body
pax = b''.join(rec(k, v) for k, v in [(b'GNU.sparse.major', b'1'),
    (b'GNU.sparse.minor', b'0'), (b'GNU.sparse.name', name),
    (b'GNU.sparse.realsize', b'%d' % realsize)])
m = b'%d\n' % len(runs) + b''.join(b'%d\n%d\n' % r for r in runs)
data = pad(m) + b''.join(b'A' * r[1] for r in runs)
open(out, 'wb').write(hdr(b'PaxHeader', len(pax), b'x') + pad(pax) +
    hdr(b'GNUSparseFile.0/' + name, len(data), b'0') + pad(data) +
    b'\0' * 1024)
