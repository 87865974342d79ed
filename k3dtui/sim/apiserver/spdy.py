"""SPDY/3.1 framing, the server's side: what kubectl's port-forward speaks inside its WebSocket.

kubectl ≥ 1.31 opens ``pods/{name}/portforward`` as a WebSocket with the subprotocol
``SPDY/3.1+portforward.k8s.io`` and carries a SPDY connection in its binary messages
(k8s.io/apimachinery ``pkg/util/portforward/constants.go``; k8s.io/client-go
``tools/portforward/tunneling_dialer.go`` and ``tunneling_connection.go``; KEP 4006).
The frames follow the SPDY/3 draft as github.com/moby/spdystream (``spdy/read.go``,
``spdy/write.go``) implements them, without flow control (spdystream has none):

- control frame: ``1 | version(15) = 3 | type(16) | flags(8) | length(24) | data``
- data frame: ``0 | stream id(31) | flags(8) | length(24) | data``; flag 0x01 is FIN
- header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are ``count(32)`` then ``len(32) name
  len(32) value`` pairs, zlib-compressed with the SPDY/3 dictionary, one compression
  context per direction for the whole connection (flushed with ``Z_SYNC_FLUSH``).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
VERSION = 3
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_REFUSED_STREAM, RST_CANCEL = 1, 2, 3, 5

# The SPDY/3 header compression dictionary (SPDY protocol draft 3, section 2.6.10.1), as
# github.com/moby/spdystream spdy/dictionary.go holds it (1423 bytes, Adler-32 0xe3c6a7c2).
_DICTIONARY_HEX = (
    "000000076f7074696f6e73000000046865616400000004706f7374000000037075740000000664656c657465"
    "000000057472616365000000066163636570740000000e6163636570742d636861727365740000000f616363"
    "6570742d656e636f64696e670000000f6163636570742d6c616e67756167650000000d6163636570742d7261"
    "6e6765730000000361676500000005616c6c6f770000000d617574686f72697a6174696f6e0000000d636163"
    "68652d636f6e74726f6c0000000a636f6e6e656374696f6e0000000c636f6e74656e742d6261736500000010"
    "636f6e74656e742d656e636f64696e6700000010636f6e74656e742d6c616e67756167650000000e636f6e74"
    "656e742d6c656e67746800000010636f6e74656e742d6c6f636174696f6e0000000b636f6e74656e742d6d64"
    "350000000d636f6e74656e742d72616e67650000000c636f6e74656e742d7479706500000004646174650000"
    "0004657461670000000665787065637400000007657870697265730000000466726f6d00000004686f737400"
    "00000869662d6d617463680000001169662d6d6f6469666965642d73696e63650000000d69662d6e6f6e652d"
    "6d617463680000000869662d72616e67650000001369662d756e6d6f6469666965642d73696e63650000000d"
    "6c6173742d6d6f646966696564000000086c6f636174696f6e0000000c6d61782d666f727761726473000000"
    "06707261676d610000001270726f78792d61757468656e7469636174650000001370726f78792d617574686f"
    "72697a6174696f6e0000000572616e676500000007726566657265720000000b72657472792d616674657200"
    "00000673657276657200000002746500000007747261696c6572000000117472616e736665722d656e636f64"
    "696e6700000007757067726164650000000a757365722d6167656e7400000004766172790000000376696100"
    "0000077761726e696e67000000107777772d61757468656e746963617465000000066d6574686f6400000003"
    "6765740000000673746174757300000006323030204f4b0000000776657273696f6e00000008485454502f31"
    "2e310000000375726c000000067075626c69630000000a7365742d636f6f6b69650000000a6b6565702d616c"
    "697665000000066f726967696e31303031303132303132303232303532303633303033303233303333303433"
    "3035333036333037343032343035343036343037343038343039343130343131343132343133343134343135"
    "343136343137353032353034353035323033204e6f6e2d417574686f726974617469766520496e666f726d61"
    "74696f6e323034204e6f20436f6e74656e74333031204d6f766564205065726d616e656e746c793430302042"
    "6164205265717565737434303120556e617574686f72697a656434303320466f7262696464656e343034204e"
    "6f7420466f756e6435303020496e7465726e616c20536572766572204572726f72353031204e6f7420496d70"
    "6c656d656e746564353033205365727669636520556e617661696c61626c654a616e20466562204d61722041"
    "7072204d6179204a756e204a756c204175672053657074204f6374204e6f76204465632030303a30303a3030"
    "204d6f6e2c205475652c205765642c205468752c204672692c205361742c2053756e2c20474d546368756e6b"
    "65642c746578742f68746d6c2c696d6167652f706e672c696d6167652f6a70672c696d6167652f6769662c61"
    "70706c69636174696f6e2f786d6c2c6170706c69636174696f6e2f7868746d6c2b786d6c2c746578742f706c"
    "61696e2c746578742f6a6176617363726970742c7075626c6963707269766174656d61782d6167653d677a69"
    "702c6465666c6174652c73646368636861727365743d7574662d38636861727365743d69736f2d383835392d"
    "312c7574662d2c2a2c656e713d302e"
)
DICTIONARY = bytes.fromhex("".join(_DICTIONARY_HEX))


class SpdyError(ValueError):
    """A frame that cannot be read."""


@dataclass
class Frame:
    control: bool
    type: int = 0  # control frames
    stream_id: int = 0  # data frames, and the control frames about one stream
    flags: int = 0
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class Codec:
    """Turns the bytes of one SPDY connection into frames and frames into bytes."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, zdict=DICTIONARY)

    # -- reading -------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data`` (a frame may span several WebSocket messages)."""
        self._buf.extend(data)
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            length = int.from_bytes(self._buf[5:8], "big")
            if len(self._buf) < 8 + length:
                break
            head, body = bytes(self._buf[:8]), bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            frames.append(self._frame(head, body))
        return frames

    def _frame(self, head: bytes, body: bytes) -> Frame:
        first, second = struct.unpack(">HH", head[:4])
        flags = head[4]
        if not first & 0x8000:
            return Frame(False, stream_id=((first << 16) | second) & 0x7FFFFFFF, flags=flags, data=body)
        version, ftype = first & 0x7FFF, second
        if version != VERSION:
            raise SpdyError(f"SPDY version {version} is not supported (3 is)")
        frame = Frame(True, type=ftype, flags=flags, data=body)
        if ftype in (SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS, WINDOW_UPDATE) and len(body) >= 4:
            frame.stream_id = int.from_bytes(body[:4], "big") & 0x7FFFFFFF
        if ftype == SYN_STREAM:
            frame.headers = self._headers(body[10:])
        elif ftype in (SYN_REPLY, HEADERS):
            frame.headers = self._headers(body[4:])
        return frame

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as exc:
            raise SpdyError(f"header block: {exc}") from exc
        headers: dict[str, str] = {}
        if len(raw) < 4:
            return headers
        count, pos = int.from_bytes(raw[:4], "big"), 4
        for _ in range(count):
            n = int.from_bytes(raw[pos:pos + 4], "big")
            name = raw[pos + 4:pos + 4 + n].decode("latin-1").lower()
            pos += 4 + n
            m = int.from_bytes(raw[pos:pos + 4], "big")
            headers[name] = raw[pos + 4:pos + 4 + m].decode("latin-1")
            pos += 4 + m
        return headers

    # -- writing -------------------------------------------------------------------------
    @staticmethod
    def _control(ftype: int, flags: int, body: bytes) -> bytes:
        return struct.pack(">HHB", 0x8000 | VERSION, ftype, flags) + len(body).to_bytes(3, "big") + body

    def _block(self, headers: dict[str, str]) -> bytes:
        raw = bytearray(len(headers).to_bytes(4, "big"))
        for name, value in headers.items():
            for part in (name.lower().encode("latin-1"), value.encode("latin-1")):
                raw += len(part).to_bytes(4, "big") + part
        return self._deflate.compress(bytes(raw)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None, *, fin: bool = False) -> bytes:
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0, stream_id.to_bytes(4, "big") + self._block(headers or {}))

    @staticmethod
    def data(stream_id: int, payload: bytes, *, fin: bool = False) -> bytes:
        return (stream_id & 0x7FFFFFFF).to_bytes(4, "big") + bytes([FLAG_FIN if fin else 0]) + \
            len(payload).to_bytes(3, "big") + payload

    def rst_stream(self, stream_id: int, status: int) -> bytes:
        return self._control(RST_STREAM, 0, stream_id.to_bytes(4, "big") + status.to_bytes(4, "big"))

    def ping(self, ping_id: bytes) -> bytes:
        return self._control(PING, 0, ping_id)

    def goaway(self, last_stream: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, last_stream.to_bytes(4, "big") + status.to_bytes(4, "big"))


MAX_DATA = 0xFFFFFF  # the 24-bit length of a data frame
