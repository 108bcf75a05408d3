"""Gate camera capture through OpenCV: streams, V4L2 devices, video files, image folders.

Public API: `CameraConfig`, `Camera` (`async with Camera(cfg) as cam: await cam.capture_burst()`),
`Frame`, `select_sharpest(frames, k)`, `sharpness(image)`.
"""

from devices.camera.capture import Camera, Frame
from devices.camera.config import CameraConfig
from devices.camera.focus import select_sharpest, sharpness
from devices.camera.sources import open_source

__all__ = ["Camera", "CameraConfig", "Frame", "open_source", "select_sharpest", "sharpness"]
