"""A tiny H.264 writer: Baseline CAVLC, every changed macroblock sent raw (I_PCM), the rest skipped.

No transform, no prediction, no entropy tables: a browser decodes it like any camera's file, and
the code stays small enough to check against the spec (ITU-T H.264, sections 7.3 and 7.4).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

_MB = 16
_LOG2_MAX_FRAME_NUM = 16
_I_PCM_IN_I_SLICE = 25
_I_PCM_IN_P_SLICE = 30  # P slices number their intra types after the five P types
_SLICE_P, _SLICE_I = 5, 7  # the "all slices of the picture are this type" values
_NAL_SLICE, _NAL_IDR, _NAL_SPS, _NAL_PPS = 1, 5, 7, 8


class _Bits:
    """An MSB-first bit writer with the Exp-Golomb codes of section 9.1."""

    __slots__ = ("_acc", "_n", "out")

    def __init__(self) -> None:
        self.out = bytearray()
        self._acc = 0
        self._n = 0

    def u(self, nbits: int, value: int) -> None:
        self._acc = (self._acc << nbits) | value
        self._n += nbits
        while self._n >= 8:
            self._n -= 8
            self.out.append((self._acc >> self._n) & 0xFF)
        self._acc &= (1 << self._n) - 1

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align(self) -> None:
        if self._n:
            self.u(8 - self._n, 0)

    def raw(self, data: bytes) -> None:
        """Byte-aligned samples (the caller aligned first)."""
        self.out += data

    def trailing(self) -> bytes:
        """rbsp_trailing_bits: a stop bit, then zeros to the byte boundary."""
        self.u(1, 1)
        self.align()
        return bytes(self.out)


def _nal(ref_idc: int, kind: int, rbsp: bytes) -> bytes:
    """A NAL unit with emulation prevention: no 00 00 0x (x <= 3) may appear in the payload."""
    out = bytearray([(ref_idc << 5) | kind])
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Picture:
    """One 4:2:0 frame in coded size (multiples of 16): Y, then Cb and Cr at half resolution."""

    y: bytes
    cb: bytes
    cr: bytes


@dataclass(frozen=True, slots=True)
class Stream:
    """An encoded clip: parameter sets for the `avcC` box, then one NAL unit per frame."""

    sps: bytes
    pps: bytes
    frames: list[bytes]


def _sps(width: int, height: int) -> bytes:
    b = _Bits()
    b.u(8, 66)  # Baseline
    b.u(8, 0xC0)  # constraint_set0 and 1: Constrained Baseline, what every decoder plays
    b.u(8, 30)  # level 3.0
    b.ue(0)  # seq_parameter_set_id
    b.ue(_LOG2_MAX_FRAME_NUM - 4)
    b.ue(2)  # pic_order_cnt_type 2: output order is decode order, nothing to signal
    b.ue(1)  # max_num_ref_frames
    b.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    coded_w, coded_h = _coded(width), _coded(height)
    b.ue(coded_w // _MB - 1)
    b.ue(coded_h // _MB - 1)
    b.u(1, 1)  # frame_mbs_only_flag
    b.u(1, 1)  # direct_8x8_inference_flag
    cropped = coded_w != width or coded_h != height
    b.u(1, int(cropped))
    if cropped:  # offsets count chroma samples: two luma pixels each in 4:2:0
        for offset in (0, (coded_w - width) // 2, 0, (coded_h - height) // 2):
            b.ue(offset)
    b.u(1, 1)  # vui_parameters_present_flag
    b.u(8, 0)  # aspect ratio, overscan, signal type, chroma loc, timing, both HRDs, pic_struct
    b.u(1, 1)  # bitstream_restriction_flag: tells the decoder it may show each frame at once
    b.u(1, 1)  # motion_vectors_over_pic_boundaries_flag
    for value in (0, 0, 10, 10, 0, 1):  # bytes/bits denominators, mv lengths, reorder 0, dpb 1
        b.ue(value)
    return _nal(3, _NAL_SPS, b.trailing())


def _pps() -> bytes:
    b = _Bits()
    b.ue(0)  # pic_parameter_set_id
    b.ue(0)  # seq_parameter_set_id
    b.u(1, 0)  # entropy_coding_mode_flag: CAVLC
    b.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    b.ue(0)  # num_slice_groups_minus1
    b.ue(0)  # num_ref_idx_l0_default_active_minus1
    b.ue(0)  # num_ref_idx_l1_default_active_minus1
    b.u(3, 0)  # weighted_pred_flag, weighted_bipred_idc
    b.se(0)  # pic_init_qp_minus26
    b.se(0)  # pic_init_qs_minus26
    b.se(0)  # chroma_qp_index_offset
    b.u(1, 1)  # deblocking_filter_control_present_flag: so slices can turn the filter off
    b.u(1, 0)  # constrained_intra_pred_flag
    b.u(1, 0)  # redundant_pic_cnt_present_flag
    return _nal(3, _NAL_PPS, b.trailing())


def _coded(pixels: int) -> int:
    return -(-pixels // _MB) * _MB


def _macroblock(pic: Picture, coded_w: int, mb_x: int, mb_y: int) -> bytes:
    """The 384 samples of one macroblock in I_PCM order: 16x16 luma, 8x8 Cb, 8x8 Cr."""
    parts = []
    for row in range(mb_y * _MB, mb_y * _MB + _MB):
        start = row * coded_w + mb_x * _MB
        parts.append(pic.y[start : start + _MB])
    half = coded_w // 2
    for plane in (pic.cb, pic.cr):
        for row in range(mb_y * 8, mb_y * 8 + 8):
            start = row * half + mb_x * 8
            parts.append(plane[start : start + 8])
    return b"".join(parts)


def _slice(index: int, blocks: Sequence[bytes], previous: Sequence[bytes] | None) -> bytes:
    """One picture as a single slice: an IDR of raw blocks, or a P slice of the changed ones."""
    idr = previous is None
    b = _Bits()
    b.ue(0)  # first_mb_in_slice
    b.ue(_SLICE_I if idr else _SLICE_P)
    b.ue(0)  # pic_parameter_set_id
    b.u(_LOG2_MAX_FRAME_NUM, index % (1 << _LOG2_MAX_FRAME_NUM))  # frame_num
    if idr:
        b.ue(0)  # idr_pic_id
    else:
        b.u(1, 0)  # num_ref_idx_active_override_flag
        b.u(1, 0)  # ref_pic_list_modification_flag_l0
    b.u(2 if idr else 1, 0)  # IDR: no_output_of_prior_pics, long_term_ref; P: sliding window
    b.se(0)  # slice_qp_delta
    b.ue(1)  # disable_deblocking_filter_idc: raw samples need no smoothing
    skipped = 0
    for n, block in enumerate(blocks):
        if previous is not None and previous[n] == block:
            skipped += 1
            continue
        if previous is not None:
            b.ue(skipped)  # mb_skip_run: those macroblocks copy the previous picture
            skipped = 0
        b.ue(_I_PCM_IN_I_SLICE if idr else _I_PCM_IN_P_SLICE)
        b.align()  # pcm_alignment_zero_bit
        b.raw(block)
    if skipped:
        b.ue(skipped)
    return _nal(3 if idr else 2, _NAL_IDR if idr else _NAL_SLICE, b.trailing())


def encode(width: int, height: int, pictures: Iterator[Picture]) -> Stream:
    """Encode pictures of coded size (width, height rounded up to 16) shown as width x height."""
    coded_w, coded_h = _coded(width), _coded(height)
    frames: list[bytes] = []
    previous: list[bytes] | None = None
    for index, pic in enumerate(pictures):
        blocks = [
            _macroblock(pic, coded_w, mb_x, mb_y)
            for mb_y in range(coded_h // _MB)
            for mb_x in range(coded_w // _MB)
        ]
        frames.append(_slice(index, blocks, previous))
        previous = blocks
    return Stream(_sps(width, height), _pps(), frames)


def coded_size(width: int, height: int) -> tuple[int, int]:
    """The macroblock-aligned size pictures must have for a width x height clip."""
    return _coded(width), _coded(height)
