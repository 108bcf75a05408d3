"""Device protocol libraries: pure codecs beside thin async transports opened by URL.

Nothing here knows about MQTT, trips or the server.
"""
