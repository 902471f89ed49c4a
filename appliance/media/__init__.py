"""Media: RTP relay, ports, codecs."""
