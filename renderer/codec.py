"""The original renderer's compact params encoding (OutThisLife/bb-particles,
`src/utils/codec.ts`): the string its `/render?c=` page takes, its `/api/raster`
answers in the `X-Encoded-Params` header and `GET /api/raster?parse=` decodes.

Format (written here from the format's description, not copied): a byte stream of
entries, then URL-safe base64 (``A–Z a–z 0–9 - _``) without padding. One entry:

    key length (1 byte) | key (UTF-8) | type byte | payload

The type byte's low 3 bits say the payload: 0 a number, stored as the signed
varint (zigzag, then 7 bits a byte, least significant first, high bit = more) of
round(value × 1000), i.e. 3 decimals; 1 a boolean (one byte, 1 = true); 2 a string
(varint byte length, UTF-8); 3 anything else (arrays, objects) as compact JSON
(varint byte length, UTF-8). Bit 8 marks an entry that carries Leva's `disabled`
flag, bit 16 is that flag. Entries are Leva's ``{"value": v}`` or ``{"value": v,
"disabled": b}``; the key order is the stream's order.

The arithmetic is the original's JavaScript: round half up (Math.round), 32-bit
zigzag and shifts, numbers inside JSON printed the way JSON.stringify prints them
(``0`` not ``0.0``). The codec is driven by the keys present, so keys this project's
schema does not know (``Element.startAngle``, ``CRT.*``) round-trip untouched.

    encode(entries) -> str        decode(text) -> entries ({} when unreadable)
    encode_body(obj) -> str       what the original's /api/raster puts in the
                                  header for a request body (see its docstring)
"""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from typing import Any

from art_explorer.scene import schema

CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_INDEX = {c: i for i, c in enumerate(CHARS)}
T_NUMBER, T_BOOL, T_STRING, T_JSON = 0, 1, 2, 3
OPTIONAL, DISABLED = 8, 16
SCALE = 1000  # numbers keep 3 decimals


# ----------------------------------------------------------------------------------
# JavaScript's arithmetic and printing


def _int32(x: int) -> int:
    """ECMAScript ToInt32 of an integer."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def _js_round(x: float) -> int:
    """Math.round then ToInt32 (NaN and ±Infinity give 0, as `| 0` does in JS)."""
    if not math.isfinite(x):
        return 0
    return _int32(math.floor(x + 0.5))


def _zigzag(n: int) -> int:
    return _int32((n << 1) ^ (n >> 31))


def _unzigzag(n: int) -> int:
    u = n & 0xFFFFFFFF
    return _int32((u >> 1) ^ -(u & 1))


def _write_uvar(buf: bytearray, v: int) -> None:
    while v >= 128:  # a negative int32 is written as one byte, as in the original
        buf.append((v & 127) | 128)
        v = (v & 0xFFFFFFFF) >> 7
    buf.append(v & 127)


def _read_uvar(buf: bytes, o: int) -> tuple[int, int]:
    r = n = s = 0
    while o + n < len(buf):
        b = buf[o + n]
        r = _int32(r | _int32((b & 127) << (s & 31)))
        n += 1
        if not b & 128:
            break
        s += 7
    return r, n


def js_number(x: float) -> str:
    """A number as JavaScript prints it (JSON.stringify, String(x)): 0 not 0.0,
    1e-7 not 1e-07, 1e+21 not 1e21; NaN and ±Infinity as JSON's null."""
    if isinstance(x, int) and abs(x) < 2**53:
        return str(x)
    try:
        f = float(x)
    except OverflowError:
        return "null"
    if not math.isfinite(f):
        return "null"
    if f == 0:
        return "0"
    sign, digits, exp = Decimal(repr(f)).normalize().as_tuple()
    s = "".join(map(str, digits))
    k = len(s)
    n = int(exp) + k  # value = 0.s × 10^n
    if k <= n <= 21:
        out = s + "0" * (n - k)
    elif 0 < n <= 21:
        out = s[:n] + "." + s[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * -n + s
    else:
        e = n - 1
        out = (s[0] + ("." + s[1:] if k > 1 else "")) + ("e+" if e >= 0 else "e-")
        out += str(abs(e))
    return ("-" if sign else "") + out


def _js_string(s: str) -> str:
    # JSON.stringify escapes what Python's json does (lowercase \u00xx for control
    # characters); a lone surrogate stays an escape
    return (
        json.dumps(s, ensure_ascii=False)
        .encode("utf-8", "backslashreplace")
        .decode("utf-8")
    )


def js_json(v: Any) -> str:
    """Compact JSON as JavaScript's JSON.stringify writes it (key order kept)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return js_number(v)
    if isinstance(v, str):
        return _js_string(v)
    if isinstance(v, dict):
        return (
            "{"
            + ",".join(f"{_js_string(str(k))}:{js_json(x)}" for k, x in v.items())
            + "}"
        )
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(js_json(x) for x in v) + "]"
    raise TypeError(f"not JSON: {type(v).__name__}")


def _utf8(s: str) -> bytes:
    """TextEncoder: UTF-8, a lone surrogate as U+FFFD."""
    return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()


# ----------------------------------------------------------------------------------
# The codec


def encode(entries: dict[str, Any]) -> str:
    """Leva entries {key: {"value": v[, "disabled": b]}} → the original's string.

    An entry without a value (or with null) is left out, as the original leaves out
    undefined ones."""
    buf = bytearray()
    for key, entry in entries.items():
        if not isinstance(entry, dict) or entry.get("value") is None:
            continue
        kb = _utf8(str(key))
        buf.append(len(kb) & 255)
        buf += kb
        opt = (
            (OPTIONAL | (DISABLED if entry["disabled"] else 0))
            if "disabled" in entry
            else 0
        )
        v = entry["value"]
        if isinstance(v, bool):
            buf += bytes((T_BOOL | opt, 1 if v else 0))
        elif isinstance(v, (int, float)):
            buf.append(T_NUMBER | opt)
            try:
                scaled = float(v) * SCALE
            except OverflowError:
                scaled = math.inf
            _write_uvar(buf, _zigzag(_js_round(scaled)))
        elif isinstance(v, str):
            sb = _utf8(v)
            buf.append(T_STRING | opt)
            _write_uvar(buf, len(sb))
            buf += sb
        else:
            ob = _utf8(js_json(v))
            buf.append(T_JSON | opt)
            _write_uvar(buf, len(ob))
            buf += ob
    return base64.urlsafe_b64encode(bytes(buf)).decode().rstrip("=")


def _unbase64(text: str) -> bytes:
    """The original's decoder, bit for bit (a character outside the alphabet counts
    as -1 there, and so here)."""
    out = bytearray()
    for i in range(0, len(text), 4):
        c0 = _INDEX.get(text[i], -1)
        c1 = _INDEX.get(text[i + 1], -1) if i + 1 < len(text) else -1
        c2 = _INDEX.get(text[i + 2], -1) if i + 2 < len(text) else 0
        c3 = _INDEX.get(text[i + 3], -1) if i + 3 < len(text) else 0
        c = _int32((c0 << 18) | _int32(c1 << 12) | _int32(c2 << 6) | c3)
        out.append((c >> 16) & 255)
        if i + 2 < len(text):
            out.append((c >> 8) & 255)
        if i + 3 < len(text):
            out.append(c & 255)
    return bytes(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # JSON.parse knows no NaN / Infinity


def decode(text: str) -> dict[str, dict[str, Any]]:
    """The original's string → Leva entries (what `GET /api/raster?parse=` answers).

    Like the original: reading stops at a zero or overlong key length; a string that
    cannot be read at all gives {}. Numbers come back as value / 1000 (3 decimals);
    an entry of an unknown type has no "value"."""
    try:
        buf = _unbase64(text)
        out: dict[str, dict[str, Any]] = {}
        o = 0
        while o < len(buf):
            kl = buf[o]
            o += 1
            if not kl or o + kl > len(buf):
                break
            key = buf[o : o + kl].decode("utf-8", "replace")
            o += kl
            if o >= len(buf):
                break
            tb = buf[o]
            o += 1
            t = tb & 7
            entry: dict[str, Any] = {}
            if tb & OPTIONAL:
                entry["disabled"] = bool(tb & DISABLED)
            if t == T_NUMBER:
                v, n = _read_uvar(buf, o)
                o += n
                x = _unzigzag(v) / SCALE
                entry["value"] = int(x) if x.is_integer() else x
            elif t == T_BOOL:
                entry["value"] = o < len(buf) and buf[o] == 1
                o += 1
            elif t in (T_STRING, T_JSON):
                length, n = _read_uvar(buf, o)
                o += n
                raw = buf[o : o + max(0, length)].decode("utf-8", "replace")
                o += length
                entry["value"] = (
                    raw
                    if t == T_STRING
                    else json.loads(raw, parse_constant=_reject_constant)
                )
            out[key] = entry
        return out
    except (ValueError, RecursionError):
        return {}


def is_entry(v: Any) -> bool:
    """A Leva entry: an object with "value" and no keys but value/disabled."""
    return isinstance(v, dict) and "value" in v and set(v) <= {"value", "disabled"}


def encode_body(body: dict[str, Any], params: dict[str, Any] | None = None) -> str:
    """The `X-Encoded-Params` string for a request body, as the original's raster
    route makes it: a body of Leva entries is encoded as it is; a prefixed body
    (`schema.is_prefixed`) has each value wrapped as an entry, unknown keys and all,
    in the body's order. A body in the flat or scene spelling is encoded as the
    complete prefixed params that were drawn (`params`, the parsed body; the
    original converts such bodies with its own fixed key list, which this project's
    flat names do not all match). The original takes a body for prefixed only when
    it has Element.geometry or Scalars.repetitions, and encodes other prefixed
    bodies as "" (its page then draws its defaults); here any Leva group key counts,
    as it does for parsing, so that the string replays what was asked."""
    if all(is_entry(v) for v in body.values()):
        return encode(body)
    if schema.is_prefixed(body):
        return encode({k: {"value": v} for k, v in body.items()})
    flat = params if params is not None else schema.validate_params(body)
    return encode({k: {"value": v} for k, v in schema.to_prefixed(flat).items()})


MAX_HEADER = 16 * 1024  # characters; real params encode to 1–3 KB


def header_for(body: dict[str, Any], params: dict[str, Any]) -> str | None:
    """`X-Encoded-Params` for a request body (parsed JSON, nested at most
    guard.MAX_JSON_DEPTH deep) that parsed to `params`, or None when it would be
    longer than MAX_HEADER (a body padded with unknown keys: HTTP clients refuse
    header lines of 64 KB and more)."""
    text = encode_body(body, params)
    return text if len(text) <= MAX_HEADER else None
