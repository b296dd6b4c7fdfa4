"""The one H.264 encoding of every clip we store: x264 High profile, 4:2:0, tagged BT.709
limited range, a keyframe every two seconds, `veryfast` at CRF 20 (about 4 Mbit/s at 720p
for a product shot). Plays wherever an ad is posted, and seeks quickly in the browser."""

PRESET = "veryfast"
CRF = 20
# The last filter of a graph: 4:2:0 frames tagged BT.709 limited range. The frames carry
# the tags to the encoder (the output options alone left a clip drawn from a still image
# without its primaries and transfer).
FRAMES = "format=yuv420p,setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"


def h264_args(fps: float) -> list[str]:
    """ffmpeg's video output options for a clip of `fps` frames a second (0: unknown,
    taken as 24)."""
    keyframes = round((fps if fps > 0 else 24) * 2)
    return [
        "-c:v",
        "libx264",
        "-preset",
        PRESET,
        "-crf",
        str(CRF),
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(max(keyframes, 1)),
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-color_range",
        "tv",
    ]
