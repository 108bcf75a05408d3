"""A simulated gate camera: rendered container doors or real photos, over MJPEG/HTTP or a folder."""
