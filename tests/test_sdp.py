"""Tests for appliance.sip.sdp: parsing, round trips, hold detection and anchoring."""
from __future__ import annotations

import copy

import pytest

from appliance.sip.sdp import MediaDescription, SdpError, SessionDescription, anchor, parse_sdp


def crlf(text: str) -> bytes:
    return ("\r\n".join(text.strip().splitlines()) + "\r\n").encode()


# What SIPp's built-in uac scenario sends once [local_ip] and [media_port] are filled in.
SIPP = crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")

BARESIP = crlf("""
v=0
o=- 2890410436 1693812345 IN IP4 192.0.2.50
s=-
c=IN IP4 192.0.2.50
t=0 0
a=tool:baresip 3.10.1
m=audio 10476 RTP/AVP 96 0 8 101 102
b=AS:128
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/48000
a=fmtp:101 0-15
a=rtpmap:102 telephone-event/8000
a=fmtp:102 0-15
a=rtcp-mux
a=rtcp:10477 IN IP4 192.0.2.50
a=sendrecv
a=label:1
a=ssrc:1234567 cname:baresip@host
a=mid:1
m=video 10478 RTP/AVP 97
i=camera
c=IN IP4 192.0.2.51
b=AS:1000
a=rtpmap:97 H264/90000
a=fmtp:97 packetization-mode=1
a=rtcp-fb:97 nack pli
a=sendrecv
""")

HOLD = crlf("""
v=0
o=- 2890410436 1693812346 IN IP4 192.0.2.50
s=-
c=IN IP4 192.0.2.50
t=0 0
m=audio 10476 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendonly
""")

OLD_HOLD = crlf("""
v=0
o=alice 1 2 IN IP4 198.51.100.5
s=call
c=IN IP4 0.0.0.0
t=0 0
m=audio 4000 RTP/AVP 0 8
""")


@pytest.mark.parametrize("body", [SIPP, BARESIP, HOLD, OLD_HOLD], ids=["sipp", "baresip", "hold", "oldhold"])
def test_round_trip_is_exact(body):
    assert parse_sdp(body).to_bytes() == body


def test_lf_only_and_trailing_blank_lines_are_accepted_and_normalised():
    lf = SIPP.replace(b"\r\n", b"\n") + b"\n"
    assert parse_sdp(lf).to_bytes() == SIPP
    assert parse_sdp(SIPP.decode()).to_bytes() == SIPP


def test_non_utf8_bytes_survive_a_round_trip():
    body = SIPP.replace(b"s=-", b"s=caf\xe9")
    assert parse_sdp(body).to_bytes() == body


def test_sipp_offer_fields():
    sdp = parse_sdp(SIPP)
    assert sdp.origin == "user1 53655765 2353687637 IN IP4 127.0.0.1"
    assert [k for k, _ in sdp.lines] == ["v", "o", "s", "c", "t"]
    audio = sdp.audio()
    assert audio is not None
    assert (audio.media, audio.port, audio.proto, audio.formats) == ("audio", 6000, "RTP/AVP", ["0"])
    assert audio.connection is None
    assert sdp.connection_for(audio) == "127.0.0.1"
    assert audio.rtpmap() == {"0": "PCMU/8000"}
    assert audio.direction == "sendrecv"
    assert not sdp.is_hold(audio)


def test_baresip_offer_fields():
    sdp = parse_sdp(BARESIP)
    audio, video = sdp.media
    assert sdp.audio() is audio
    assert audio.codec_names() == ["opus", "PCMU", "PCMA", "telephone-event", "telephone-event"]
    assert audio.rtpmap()["96"] == "opus/48000/2"
    assert audio.other_lines == ["b=AS:128"]
    assert ("rtcp-mux", None) in audio.attributes and ("ssrc", "1234567 cname:baresip@host") in audio.attributes
    assert audio.attribute("rtcp") == "10477 IN IP4 192.0.2.50"
    assert audio.attribute("rtcp-mux") == ""
    assert audio.attribute("nonexistent") is None
    assert sdp.connection_for(video) == "192.0.2.51"
    assert video.connection == "IN IP4 192.0.2.51"
    assert video.other_lines == ["i=camera", "b=AS:1000"]
    assert sdp.attributes == [("tool", "baresip 3.10.1")]


def test_static_payloads_are_named_without_rtpmap():
    audio = parse_sdp(OLD_HOLD).media[0]
    assert audio.rtpmap() == {}
    assert audio.codec_names() == ["PCMU", "PCMA"]


def test_codec_names_fall_back_to_payload_type_when_unknown():
    sdp = parse_sdp(SIPP.replace(b"RTP/AVP 0", b"RTP/AVP 0 99"))
    assert sdp.media[0].codec_names() == ["PCMU", "99"]


def test_sendonly_reinvite_is_hold():
    sdp = parse_sdp(HOLD)
    audio = sdp.audio()
    assert audio.direction == "sendonly"
    assert sdp.is_hold(audio)


@pytest.mark.parametrize("attribute,expected,held", [
    ("a=recvonly", "recvonly", False), ("a=inactive", "inactive", True), ("a=sendrecv", "sendrecv", False),
])
def test_direction_attributes(attribute, expected, held):
    sdp = parse_sdp(SIPP + attribute.encode() + b"\r\n")
    assert sdp.audio().direction == expected
    assert sdp.is_hold(sdp.audio()) is held


def test_old_style_hold_with_zero_address_is_inactive():
    sdp = parse_sdp(OLD_HOLD)
    audio = sdp.audio()
    assert sdp.connection_for(audio) == "0.0.0.0"
    assert sdp.direction_of(audio) == "inactive"
    assert sdp.is_hold(audio)
    # The same at media level is visible to the stream on its own.
    media_level = parse_sdp(SIPP + b"c=IN IP4 0.0.0.0\r\n")
    assert media_level.audio().direction == "inactive"
    sendonly = parse_sdp(OLD_HOLD + b"a=sendonly\r\n")
    assert sendonly.direction_of(sendonly.audio()) == "sendonly"


def test_session_level_direction_applies_to_media():
    body = SIPP.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    sdp = parse_sdp(body)
    assert sdp.direction_of(sdp.audio()) == "sendonly"
    assert sdp.is_hold(sdp.audio())
    overridden = parse_sdp(body + b"a=sendrecv\r\n")
    assert overridden.direction_of(overridden.audio()) == "sendrecv"


def test_multicast_connection_reports_address_only():
    sdp = parse_sdp(SIPP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 224.2.1.1/127"))
    assert sdp.connection_for(sdp.audio()) == "224.2.1.1"


def test_port_count_round_trips():
    body = SIPP.replace(b"m=audio 6000 RTP/AVP", b"m=audio 6000/2 RTP/AVP")
    sdp = parse_sdp(body)
    assert (sdp.audio().port, sdp.audio().port_count) == (6000, 2)
    assert sdp.to_bytes() == body


def test_audio_skips_rejected_streams():
    body = SIPP.replace(b"m=audio 6000 RTP/AVP 0", b"m=audio 0 RTP/AVP 0\r\nm=audio 7000 RTP/AVP 8")
    sdp = parse_sdp(body)
    assert sdp.audio().port == 7000
    assert parse_sdp(SIPP.replace(b"m=audio 6000", b"m=audio 0")).audio() is None


@pytest.mark.parametrize("body,fragment", [
    (b"", "empty"),
    (SIPP.replace(b"v=0\r\n", b""), "v=0"),
    (SIPP.replace(b"v=0", b"v=1"), "v=0"),
    (SIPP + b"v=0\r\n", "repeated"),
    (SIPP.replace(b"m=audio 6000 RTP/AVP 0", b"m=audio 6000"), "m="),
    (SIPP.replace(b"m=audio 6000", b"m=audio sixk"), "port"),
    (SIPP.replace(b"m=audio 6000", b"m=audio -1"), "port"),
    (SIPP.replace(b"m=audio 6000", b"m=audio 70000"), "port"),
    (SIPP.replace(b"m=audio 6000", b"m=audio 6000/x"), "port"),
    (SIPP.replace(b"RTP/AVP 0", b"RTP/AVP"), "formats"),
    (SIPP.replace(b"s=-", b"s -"), "malformed"),
    (SIPP.replace(b"s=-", b"S=-"), "malformed"),
    (SIPP.replace(b"s=-", b" s=-"), "malformed"),
    (SIPP.replace(b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n", b""), "o="),
    (SIPP.replace(b"o=user1 53655765", b"o=user1"), "o="),
    (SIPP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4"), "c="),
    (SIPP + b"c=garbage\r\n", "c="),
])
def test_malformed_sdp_raises_sdp_error(body, fragment):
    with pytest.raises(SdpError, match=fragment):
        parse_sdp(body)


def test_sdp_error_is_a_value_error():
    assert issubclass(SdpError, ValueError)


# ---- anchor ------------------------------------------------------------------------------


def test_anchor_baresip_offer():
    offer = parse_sdp(BARESIP)
    before = copy.deepcopy(offer)
    out = anchor(offer, "192.0.2.10", 40000, session_id=77, version=3)
    assert offer == before  # the input is left alone

    assert out.origin == "switchboard 77 3 IN IP4 192.0.2.10"
    assert out.connection == "IN IP4 192.0.2.10"
    audio, video = out.media
    assert (audio.port, audio.proto) == (40000, "RTP/AVP")
    # opus is not allowed; telephone-event/48000 has no allowed codec at its rate.
    assert audio.formats == ["0", "8", "102"]
    assert audio.rtpmap() == {"0": "PCMU/8000", "8": "PCMA/8000", "102": "telephone-event/8000"}
    assert [v for k, v in audio.attributes if k == "fmtp"] == ["102 0-15"]
    names = [k for k, _ in audio.attributes]
    assert "rtcp" not in names and "rtcp-mux" not in names
    # Only the format and the direction pass: the other phone's identity stays behind (issue 14, item 20).
    assert set(names) == {"rtpmap", "fmtp", "sendrecv"}
    assert audio.other_lines == ["b=AS:128"]
    assert out.connection_for(audio) == "192.0.2.10"
    # Video is refused in place: same m= count, port 0, nothing of the original address left.
    assert (video.media, video.port, video.formats) == ("video", 0, ["97"])
    assert video.attributes == [] and video.connection is None and video.other_lines == []
    assert out.attributes == []  # no a=tool of the other phone
    wire = out.to_bytes()
    assert b"192.0.2.5" not in wire
    assert parse_sdp(wire) == out


def test_anchor_sipp_offer_exact_output():
    out = anchor(parse_sdp(SIPP), "203.0.113.1", 30000, session_id=5, version=1)
    assert out.to_bytes() == crlf("""
v=0
o=switchboard 5 1 IN IP4 203.0.113.1
s=-
c=IN IP4 203.0.113.1
t=0 0
m=audio 30000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")


def test_anchor_keeps_hold_direction():
    out = anchor(parse_sdp(HOLD), "203.0.113.1", 30000, session_id=5, version=2)
    audio = out.audio()
    assert audio.direction == "sendonly" and out.is_hold(audio)
    assert audio.formats == ["0", "101"]
    assert ("ptime", "20") in audio.attributes


def test_anchor_turns_zero_address_hold_into_explicit_inactive():
    out = anchor(parse_sdp(OLD_HOLD), "203.0.113.1", 30000, session_id=5, version=2)
    audio = out.audio()
    assert out.connection_for(audio) == "203.0.113.1"
    assert ("inactive", None) in audio.attributes
    assert out.is_hold(audio)


def test_anchor_replaces_media_level_connection_and_sets_session_one():
    body = SIPP.replace(b"c=IN IP4 127.0.0.1\r\n", b"").replace(
        b"m=audio 6000 RTP/AVP 0\r\n", b"m=audio 6000 RTP/AVP 0\r\nc=IN IP4 203.0.113.3\r\n")
    out = anchor(parse_sdp(body), "203.0.113.1", 30000, session_id=5, version=1)
    assert out.audio().connection == "IN IP4 203.0.113.1"
    assert [k for k, _ in out.lines] == ["v", "o", "s", "c", "t"]


def test_anchor_ipv6_address():
    out = anchor(parse_sdp(SIPP), "2001:db8::1", 30000, session_id=5, version=1)
    assert out.origin == "switchboard 5 1 IN IP6 2001:db8::1"
    assert out.connection == "IN IP6 2001:db8::1"


def test_anchor_allowed_names_are_case_insensitive_and_dynamic_by_rtpmap():
    out = anchor(parse_sdp(BARESIP), "203.0.113.1", 30000, session_id=1, version=1, allowed=("OPUS", "Telephone-Event"))
    assert out.audio().formats == ["96", "101"]
    assert [v for k, v in out.audio().attributes if k == "fmtp"] == ["96 stereo=1;sprop-stereo=1", "101 0-15"]


def test_anchor_without_allowed_codec_raises():
    opus_only = BARESIP.replace(b"RTP/AVP 96 0 8 101 102", b"RTP/AVP 96 101")
    with pytest.raises(SdpError):
        anchor(parse_sdp(opus_only), "203.0.113.1", 30000, session_id=1, version=1)
    with pytest.raises(SdpError):
        anchor(parse_sdp(SIPP), "203.0.113.1", 30000, session_id=1, version=1, allowed=("telephone-event",))


def test_anchor_refuses_srtp_and_rejected_only_audio():
    with pytest.raises(SdpError):
        anchor(parse_sdp(SIPP.replace(b"RTP/AVP", b"RTP/SAVP")), "203.0.113.1", 30000, session_id=1, version=1)
    with pytest.raises(SdpError):
        anchor(parse_sdp(SIPP.replace(b"m=audio 6000", b"m=audio 0")), "203.0.113.1", 30000, session_id=1, version=1)


def test_anchor_picks_first_usable_audio_and_rejects_the_rest():
    body = SIPP.replace(b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
                        b"m=audio 6000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc\r\n"
                        b"m=audio 6002 RTP/AVP 8\r\n")
    out = anchor(parse_sdp(body), "203.0.113.1", 30000, session_id=1, version=1)
    assert [(m.port, m.proto, m.formats) for m in out.media] == [
        (0, "RTP/SAVP", ["0"]), (30000, "RTP/AVP", ["8"])]
    assert b"crypto" not in out.to_bytes()


def test_anchor_drops_session_level_transport_attributes():
    body = SIPP.replace(b"t=0 0\r\n", b"t=0 0\r\na=group:BUNDLE 0\r\na=ice-lite\r\na=recvonly\r\n")
    out = anchor(parse_sdp(body), "203.0.113.1", 30000, session_id=1, version=1)
    assert out.attributes == [("recvonly", None)]
    assert out.direction_of(out.audio()) == "recvonly"


def test_media_description_positional_construction_and_serialisation():
    media = MediaDescription("audio", 5004, "RTP/AVP", ["0"], "IN IP4 203.0.113.2",
                             [("rtpmap", "0 PCMU/8000"), ("sendonly", None)], ["b=AS:64", "i=x"])
    assert media.lines() == ["m=audio 5004 RTP/AVP 0", "i=x", "c=IN IP4 203.0.113.2", "b=AS:64",
                             "a=rtpmap:0 PCMU/8000", "a=sendonly"]
    sdp = SessionDescription([("v", "0"), ("o", "- 1 1 IN IP4 203.0.113.2"), ("s", "-"), ("t", "0 0")], [media])
    wire = sdp.to_bytes()
    assert wire.startswith(b"v=0\r\no=- 1 1 IN IP4 203.0.113.2\r\ns=-\r\nt=0 0\r\nm=audio")
    assert parse_sdp(wire).to_bytes() == wire
