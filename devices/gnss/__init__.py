"""GNSS receivers speaking NMEA 0183 (GPS, BeiDou, GLONASS, Galileo, QZSS, NavIC)."""

from devices.gnss.codec import GnssFix, NmeaStreamDecoder, encode_sentence

__all__ = ["GnssFix", "NmeaStreamDecoder", "encode_sentence"]
