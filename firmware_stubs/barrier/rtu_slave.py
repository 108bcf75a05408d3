"""A minimal Modbus RTU slave on the master end of a pty, answering for the plant.

Frames are parsed and built by pymodbus (`FramerRTU` with the server-side PDU decoder);
this module only answers the handful of function codes a relay/IO module has and
injects the faults asked for on the control channel.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsResponse,
    ReadDiscreteInputsResponse,
    WriteMultipleCoilsResponse,
    WriteSingleCoilResponse,
)
from pymodbus.pdu.register_message import ReadInputRegistersResponse

from firmware_stubs.barrier.model import N_COILS, N_INPUTS, BarrierPlant

logger = logging.getLogger(__name__)

ILLEGAL_FUNCTION = 0x01
ILLEGAL_ADDRESS = 0x02


class RtuSlave:
    """Reads requests from `fd`, answers those for `unit_id`, applies them to `plant`."""

    def __init__(self, fd: int, unit_id: int, plant: BarrierPlant) -> None:
        self.fd = fd
        self.unit_id = unit_id
        self.plant = plant
        self.framer = FramerRTU(DecodePDU(True))
        self.buffer = b""
        self.silent = False
        self.silent_until = 0.0
        """Monotonic time until which the module answers nothing (a reboot)."""
        self.crc_every = 0
        """Corrupt the CRC of every n-th reply (0: never, 1: all)."""
        self.replies = 0
        self.requests = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.fd, self._readable)

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.fd)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 1024)
        except BlockingIOError:
            return
        except OSError as err:  # the agent side closed: keep listening
            logger.debug("pty read: %s", err)
            return
        self.buffer += data
        while self.buffer:
            try:
                used, pdu = self.framer.handleFrame(self.buffer, 0, 0)
            except ModbusException as err:
                logger.warning("undecodable request %s: %s", self.buffer.hex(), err)
                self.buffer = b""
                return
            self.buffer = self.buffer[used:]
            if pdu is None:
                return
            self._handle(pdu)

    def _handle(self, request: ModbusPDU) -> None:
        if request.dev_id not in (0, self.unit_id):
            return
        now = time.monotonic()
        if now < self.silent_until:
            return  # rebooting: the request is lost, nothing is applied
        self.requests += 1
        reply = self._apply(request, now)
        if request.dev_id == 0 or self.silent:
            return  # broadcasts are never answered; a silent module answers nothing
        reply.dev_id = self.unit_id
        frame = self.framer.buildFrame(reply)
        self.replies += 1
        if self.crc_every and self.replies % self.crc_every == 0:
            frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
        os.write(self.fd, frame)

    def _apply(self, request: ModbusPDU, now: float) -> ModbusPDU:
        plant = self.plant
        plant.tick(now)
        fc = request.function_code
        if fc in (1, 2):
            source = plant.coils if fc == 1 else plant.discrete_inputs()
            size = N_COILS if fc == 1 else N_INPUTS
            if request.count < 1 or request.address + request.count > size:
                return ExceptionResponse(fc, ILLEGAL_ADDRESS)
            bits = source[request.address : request.address + request.count]
            cls = ReadCoilsResponse if fc == 1 else ReadDiscreteInputsResponse
            return cls(bits=bits)
        if fc == 4:
            registers = plant.input_registers()
            if request.count < 1 or request.address + request.count > len(registers):
                return ExceptionResponse(fc, ILLEGAL_ADDRESS)
            return ReadInputRegistersResponse(
                registers=registers[request.address : request.address + request.count]
            )
        if fc == 5:
            value = bool(request.bits[0])
            if not plant.write_coil(request.address, value, now):
                return ExceptionResponse(fc, ILLEGAL_ADDRESS)
            return WriteSingleCoilResponse(address=request.address, bits=[value])
        if fc == 15:
            bits = list(request.bits)[: request.count]
            if request.address + len(bits) > N_COILS:
                return ExceptionResponse(fc, ILLEGAL_ADDRESS)
            for offset, value in enumerate(bits):
                plant.write_coil(request.address + offset, bool(value), now)
            return WriteMultipleCoilsResponse(address=request.address, count=len(bits))
        return ExceptionResponse(fc, ILLEGAL_FUNCTION)
