#!/usr/bin/env python3
"""A query client written apart from the server, from the protocol
descriptions (Valve's A2S with challenges and split packets; Unity's SQP as
go-svrquery reads it). Prints what it got as JSON.

    query_client.py a2s HOST PORT
    query_client.py sqp HOST PORT
"""
import json
import socket
import struct
import sys

TIMEOUT = 5.0


def cstr(buf, pos):
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("utf-8", "replace"), end + 1


def a2s_exchange(sock, kind, payload=b""):
    """Sends request `kind`, answers a challenge, reassembles split replies."""
    if kind == 0x54:
        request = lambda ch: b"\xff\xff\xff\xff\x54Source Engine Query\0" + (ch or b"")
    else:
        request = lambda ch: b"\xff\xff\xff\xff" + bytes([kind]) + (ch or b"\xff\xff\xff\xff")
    sock.send(request(None))
    parts = {}
    while True:
        data = sock.recv(65536)
        if data[:4] == b"\xff\xff\xff\xff" and data[4] == 0x41:
            sock.send(request(data[5:9]))
            continue
        if data[:4] == b"\xff\xff\xff\xff":
            return data
        if data[:4] != b"\xfe\xff\xff\xff":
            raise ValueError("unexpected packet header")
        total, number = data[8], data[9]
        parts[number] = data[12:]
        if len(parts) == total:
            return b"".join(parts[i] for i in range(total))


def a2s(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    sock.connect((host, port))
    info = a2s_exchange(sock, 0x54)
    assert info[4] == 0x49
    pos = 6
    name, pos = cstr(info, pos)
    map_, pos = cstr(info, pos)
    folder, pos = cstr(info, pos)
    game, pos = cstr(info, pos)
    pos += 2
    players_n, max_players = info[pos], info[pos + 1]
    r = a2s_exchange(sock, 0x55)
    assert r[4] == 0x44
    players = []
    pos = 6
    for _ in range(r[5]):
        pos += 1
        pname, pos = cstr(r, pos)
        score, duration = struct.unpack_from("<if", r, pos)
        pos += 8
        players.append({"name": pname, "score": score, "duration": duration})
    r = a2s_exchange(sock, 0x56)
    assert r[4] == 0x45
    (count,) = struct.unpack_from("<H", r, 5)
    pos = 7
    rules = {}
    for _ in range(count):
        k, pos = cstr(r, pos)
        v, pos = cstr(r, pos)
        rules[k] = v
    return {"name": name, "map": map_, "players": players_n, "max_players": max_players,
            "player_list": players, "rules": rules}


def sqp_string(buf, pos):
    n = buf[pos]
    return buf[pos + 1:pos + 1 + n].decode("utf-8", "replace"), pos + 1 + n


def sqp_value(buf, pos, t):
    if t == 0:
        return buf[pos], pos + 1
    if t in (1, 2, 3):
        fmt = {1: ">H", 2: ">I", 3: ">Q"}[t]
        return struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)
    if t == 4:
        return sqp_string(buf, pos)
    raise ValueError("unknown SQP type %d" % t)


def sqp_records(chunk):
    (count,) = struct.unpack_from(">H", chunk, 0)
    if count == 0:
        return []
    pos = 3
    fields = []
    for _ in range(chunk[2]):
        name, pos = sqp_string(chunk, pos)
        fields.append((name, chunk[pos]))
        pos += 1
    out = []
    for _ in range(count):
        rec = {}
        for name, t in fields:
            rec[name], pos = sqp_value(chunk, pos, t)
        out.append(rec)
    return out


def sqp(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    sock.connect((host, port))
    sock.send(b"\x00\x00\x00\x00\x00")
    ch = sock.recv(1500)
    assert ch[0] == 0 and len(ch) == 5
    sock.send(b"\x01" + ch[1:5] + b"\x00\x01" + b"\x0f")
    parts = {}
    while True:
        p = sock.recv(1500)
        assert p[0] == 1 and p[1:5] == ch[1:5]
        cur, last = p[7], p[8]
        (n,) = struct.unpack_from(">H", p, 9)
        parts[cur] = p[11:11 + n]
        if len(parts) == last + 1:
            break
    payload = b"".join(parts[i] for i in range(last + 1))
    chunks = []
    pos = 0
    for _ in range(4):
        (n,) = struct.unpack_from(">I", payload, pos)
        chunks.append(payload[pos + 4:pos + 4 + n])
        pos += 4 + n
    info = chunks[0]
    cur_players, max_players = struct.unpack_from(">HH", info, 0)
    p = 4
    name, p = sqp_string(info, p)
    game_type, p = sqp_string(info, p)
    build, p = sqp_string(info, p)
    map_, p = sqp_string(info, p)
    rules = {}
    r = chunks[1]
    p = 0
    while p < len(r):
        k, p = sqp_string(r, p)
        t = r[p]
        rules[k], p = sqp_value(r, p + 1, t)
    return {"name": name, "map": map_, "players": cur_players, "max_players": max_players,
            "player_list": sqp_records(chunks[2]), "teams": sqp_records(chunks[3]),
            "rules": rules, "packets": last + 1}


if __name__ == "__main__":
    proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(a2s(host, port) if proto == "a2s" else sqp(host, port)))
