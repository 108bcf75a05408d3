"""Simulated GNSS receiver (GPS + BeiDou NMEA) on a virtual serial port."""
