#!/usr/bin/env python3
# Spoofed junk for bench/flood.ts (root only: a raw socket). Sends UDP datagrams whose IP source
# is a peer's exact heartbeat address (host:port), so they pass the receiver's source check and
# reach its receive budget (harness/recv-budget.ts) and, within it, the HMAC. Runs until killed or
# for `seconds`; prints {"t":ms,"sent":N} once a second.
#   spoof-sender.py <src_ip> <src_port> <dst_ip> <dst_port> <seconds> <hex payload>...
import json, socket, struct, sys, time

src, sport, dst, dport, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
payloads = [bytes.fromhex(h) for h in sys.argv[6:]]
# A 60 KiB one too: "HBT", version 2, deflate flag, junk.
payloads.append(b"HBT\x02\x01" + bytes((i * 7) & 255 for i in range(60 * 1024 - 5)))

s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # IP_HDRINCL implied


def packet(payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # checksum 0: none (IPv4)
    # Version/IHL, TOS, total length (kernel fills), id (kernel fills when 0), flags/frag, TTL,
    # protocol UDP, checksum (kernel fills), source, destination.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, socket.IPPROTO_UDP, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return ip + udp


# Mostly small forged heartbeats; every 5th the large one.
pkts = [packet(p) for p in payloads]
order = [pkts[i % (len(pkts) - 1)] for i in range(4)] + [pkts[-1]]
end = time.time() + seconds
sent, second, n = 0, time.time(), 0
try:
    while time.time() < end:
        for _ in range(256):
            try:
                s.sendto(order[n % len(order)], (dst, 0))
                sent += 1
            except OSError:
                pass
            n += 1
        now = time.time()
        if now - second >= 1:
            print(json.dumps({"t": int(now * 1000), "sent": sent}), flush=True)
            sent, second = 0, now
except KeyboardInterrupt:
    pass
print(json.dumps({"t": int(time.time() * 1000), "sent": sent}), flush=True)
