"""Test-only numeric oracle for ``sam_widget.models.sam.tiny_vit.TinyViT``.

No installable package ships MobileSAM's TinyViT with light dependencies: MobileSAM itself is
not on PyPI, and ``ultralytics`` (whose ``ultralytics/models/sam/modules/tiny_encoder.py`` is
MobileSAM's ``tiny_vit_sam.py`` with training-only parts disabled) requires torchvision and
opencv and would replace our torch. So the reference was run once, offline, and its outputs are
recorded below as golden values:

- weights: every state-dict entry is filled from a hash of (key, index), see
  :func:`deterministic_state_dict`; no torch/numpy RNG is involved, so the numbers are the same
  on every platform and version. Only (key, shape) pairs matter, so the same weights load into
  the reference and into ours.
- input: :func:`deterministic_input`, 1 x 3 x 1024 x 1024.
- the reference ran in float64, in eval mode (``.eval()`` called after loading, as MobileSAM's
  README does, so its cached attention biases are the loaded ones).
- recorded: :func:`summarize` of the 1 x 256 x 64 x 64 output.

To regenerate (prints the ``GOLDEN_*`` block)::

    pip download --no-deps ultralytics==8.4.190      # the wheel, no install
    unzip ultralytics-8.4.190-py3-none-any.whl 'ultralytics/models/sam/modules/tiny_encoder.py'
    python tests/_mobilesam_oracle.py ultralytics/models/sam/modules/tiny_encoder.py

(tiny_encoder.py of ultralytics 8.4.190 has sha256
3ebe373867dccbd8c57c1b1f82ccd94b6a108f9082543a067810c72eb35c815d.) Its three package-internal
imports are stubbed: ``LayerNorm2d`` by the published ``segment_anything`` one (identical to
MobileSAM's), ``to_2tuple`` and ``TORCH_1_11``.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types
import zlib
from collections.abc import Mapping

import numpy as np
import torch

_MASK64 = (1 << 64) - 1

# Output positions sampled for the golden values: 32 channels x 4 rows x 4 columns, including
# the last row/column (where windows are padded and cropped).
SAMPLE_CHANNELS = tuple(range(0, 256, 8))
SAMPLE_ROWS = (0, 21, 42, 63)
SAMPLE_COLS = (0, 22, 41, 63)
N_PROJECTIONS = 4


def hash_uniform(seed: int, n: int) -> np.ndarray:
    """``n`` float64 values in [0, 1) from a SplitMix64 hash of (seed, index). Platform-exact."""
    start = (seed * 0x9E3779B97F4A7C15) & _MASK64
    z = np.arange(n, dtype=np.uint64) + np.uint64(start)  # uint64 arrays wrap silently
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _uniform(name: str, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    n = math.prod(shape)
    u = hash_uniform(zlib.crc32(name.encode()), n)
    return torch.from_numpy(lo + (hi - lo) * u).reshape(shape)


def deterministic_state_dict(
    shapes: Mapping[str, tuple[int, ...]], dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Fill every entry from its key and shape, with scales that keep activations O(1).

    Conv/linear weights: U(+-sqrt(3 / fan_in)); their biases U(+-0.1); BatchNorm weight
    U(0.5, 1.5), bias and running_mean U(+-0.3), running_var U(0.5, 2); LayerNorm weight
    U(0.7, 1.3), bias U(+-0.2); attention_biases U(+-1.5); num_batches_tracked 0 (int64).
    """
    out: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        parent, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            out[key] = torch.zeros(shape, dtype=torch.int64)
            continue
        is_bn = parent.endswith(".bn")
        is_layernorm = not is_bn and len(shapes.get(parent + ".weight", (0, 0))) == 1
        if leaf == "attention_biases":
            lo, hi = -1.5, 1.5
        elif leaf == "running_var":
            lo, hi = 0.5, 2.0
        elif leaf == "running_mean" or (is_bn and leaf == "bias"):
            lo, hi = -0.3, 0.3
        elif is_bn:
            lo, hi = 0.5, 1.5
        elif is_layernorm:
            lo, hi = (0.7, 1.3) if leaf == "weight" else (-0.2, 0.2)
        elif leaf == "bias":
            lo, hi = -0.1, 0.1
        else:
            a = math.sqrt(3.0 / math.prod(shape[1:]))
            lo, hi = -a, a
        out[key] = _uniform(key, shape, lo, hi).to(dtype)
    return out


def deterministic_input(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """1 x 3 x 1024 x 1024 in [-2, 2] (the range of SAM-normalized pixels)."""
    return _uniform("input", (1, 3, 1024, 1024), -2.0, 2.0).to(dtype)


def _projection_weights(k: int, shape: tuple[int, ...]) -> torch.Tensor:
    # +-1 per output element, float64.
    return torch.where(_uniform(f"projection{k}", shape, 0.0, 1.0) < 0.5, -1.0, 1.0)


def summarize(out: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(samples, projections) of a 1 x 256 x 64 x 64 output, both float64.

    samples: ``out[0, c, y, x]`` for c, y, x in SAMPLE_CHANNELS x SAMPLE_ROWS x SAMPLE_COLS
    (c slowest). projections: ``sum(out * w_k)`` for N_PROJECTIONS fixed +-1 fields ``w_k``,
    so every output element counts.
    """
    out64 = out.detach().to(torch.float64).cpu()
    c = torch.tensor(SAMPLE_CHANNELS)
    y = torch.tensor(SAMPLE_ROWS)
    x = torch.tensor(SAMPLE_COLS)
    samples = out64[0][c[:, None, None], y[None, :, None], x[None, None, :]].reshape(-1)
    projections = [
        float((out64 * _projection_weights(k, tuple(out64.shape))).sum())
        for k in range(N_PROJECTIONS)
    ]
    return samples.numpy(), np.array(projections)


def load_reference_module(tiny_encoder_path: str) -> types.ModuleType:
    """Import ultralytics' ``tiny_encoder.py`` standalone, stubbing its package imports."""
    from _torchvision_shim import import_reference

    sam_ref = import_reference()
    stubs = {
        "ultralytics": types.ModuleType("ultralytics"),
        "ultralytics.nn": types.ModuleType("ultralytics.nn"),
        "ultralytics.nn.modules": types.ModuleType("ultralytics.nn.modules"),
        "ultralytics.utils": types.ModuleType("ultralytics.utils"),
        "ultralytics.utils.instance": types.ModuleType("ultralytics.utils.instance"),
        "ultralytics.utils.torch_utils": types.ModuleType("ultralytics.utils.torch_utils"),
    }
    stubs["ultralytics.nn.modules"].LayerNorm2d = sam_ref.modeling.common.LayerNorm2d  # type: ignore[attr-defined]
    stubs["ultralytics.utils.instance"].to_2tuple = lambda v: (v, v)  # type: ignore[attr-defined]
    stubs["ultralytics.utils.torch_utils"].TORCH_1_11 = True  # type: ignore[attr-defined]
    for name, module in stubs.items():
        sys.modules.setdefault(name, module)
    spec = importlib.util.spec_from_file_location("mobilesam_tiny_encoder", tiny_encoder_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _format(name: str, values: np.ndarray) -> str:
    rows = (" ".join(f"{v:.9e}" for v in values[i : i + 4]) for i in range(0, len(values), 4))
    return f'_{name}_TEXT = """\n' + "\n".join(rows) + '\n"""'


def main(argv: list[str]) -> None:
    from test_tiny_vit import ENCODER_SHAPES

    ref = load_reference_module(argv[0])
    # MobileSAM's build_sam_vit_t construction of the vit_t encoder.
    model = ref.TinyViT(
        img_size=1024,
        in_chans=3,
        num_classes=1000,
        embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10],
        window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        layer_lr_decay=0.8,
    )
    ref_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ref_shapes == ENCODER_SHAPES, "reference keys/shapes differ from the test's table"
    model.load_state_dict(deterministic_state_dict(ENCODER_SHAPES, torch.float64), strict=True)
    model = model.double().eval()  # eval() after loading refreshes the cached biases
    with torch.no_grad():
        out = model(deterministic_input(torch.float64))
    samples, projections = summarize(out)
    print(_format("GOLDEN_SAMPLES", samples))
    print(_format("GOLDEN_PROJECTIONS", projections))
    print(f"GOLDEN_OUTPUT_RMS = {float(out.pow(2).mean().sqrt()):.9e}")


# Recorded with ultralytics 8.4.190's tiny_encoder.py, float64, torch 2.13.0+cpu.
_GOLDEN_SAMPLES_TEXT = """
1.982791148e+00 7.914065940e-01 8.275520874e-01 -3.012433147e-01
1.365137249e+00 5.417497270e-01 5.202629311e-01 1.167033086e-01
1.381451460e+00 5.169789984e-01 5.376198615e-01 1.233874384e-01
-6.509332507e-01 -4.582515816e-01 -4.277560017e-01 1.149618623e+00
-9.984309108e-01 -1.177832514e+00 -1.326704900e+00 -7.968662531e-01
-1.224873502e+00 -9.311803226e-01 -9.182796668e-01 -9.822461877e-01
-1.188326522e+00 -9.221329583e-01 -8.808885724e-01 -9.851497045e-01
-5.044687564e-01 -6.871450946e-01 -6.098872008e-01 -5.962152241e-01
-5.322425451e-01 -1.882386794e-01 -3.125751729e-01 -1.899329386e-01
-2.616984837e-01 6.916943704e-01 6.657133306e-01 6.204488027e-01
-2.749478940e-01 6.825767335e-01 6.835837344e-01 6.720602952e-01
-1.599934454e+00 -1.261890367e+00 -1.150496301e+00 -9.473035350e-01
2.794137561e-01 1.251673900e+00 1.219287783e+00 2.761331489e+00
6.928009029e-01 1.374221930e+00 1.310051248e+00 3.176416604e+00
6.584713243e-01 1.367165116e+00 1.336986545e+00 3.086684927e+00
1.022113401e-01 8.488234082e-01 8.508136816e-01 6.189012344e-01
-3.834864817e-01 -1.188093142e+00 -1.463589390e+00 1.195569266e-02
-2.254010756e-01 -2.014329860e+00 -1.967568720e+00 -6.685479202e-01
-4.270422195e-01 -2.186578608e+00 -2.162299625e+00 -6.700578582e-01
6.563732761e-01 -2.232596965e+00 -2.353265324e+00 -1.637558141e+00
2.411086553e-01 8.433133333e-02 1.163420434e-01 -3.029232155e-01
-8.084872396e-01 -6.476557102e-01 -6.337450450e-01 -1.296766225e+00
-7.559414103e-01 -6.883205574e-01 -7.143790114e-01 -1.311635174e+00
9.035399954e-01 6.761873774e-01 5.920661829e-01 3.336960371e-01
-8.498226906e-01 -8.822599805e-02 -5.688734583e-02 4.245685623e-01
-1.313895790e-01 -6.194212844e-01 -6.219934649e-01 -1.580600404e+00
-1.966123660e-03 -5.121081077e-01 -5.494062863e-01 -1.614139699e+00
3.084210187e-01 -3.899382965e-01 -2.685025653e-01 -1.458190814e+00
-9.712420709e-01 -5.824073517e-01 -5.054479193e-01 7.274291221e-01
-1.240172308e+00 -4.454347197e-01 -3.706257707e-01 1.098239393e+00
-1.133429722e+00 -2.455061161e-01 -2.071827765e-01 1.081739521e+00
-1.749405422e-01 3.716073169e-01 3.111355758e-01 1.089554172e+00
5.547385256e-01 9.136323026e-01 7.908872305e-01 -5.432534708e-01
7.161019172e-01 8.078463553e-01 8.437992623e-01 3.222158997e-02
7.870846891e-01 8.655124366e-01 8.579994099e-01 4.598038453e-02
2.661811028e-01 9.347114780e-01 8.917804177e-01 5.518425401e-01
-1.347702124e+00 7.430690409e-01 8.871543773e-01 2.226881671e+00
1.219999120e-01 1.333768481e+00 1.312863849e+00 4.884569650e-01
2.353635837e-01 1.415573729e+00 1.385243585e+00 5.350417225e-01
-5.222795851e-01 3.712805429e-01 4.095893658e-01 -9.948374065e-01
-1.088224592e+00 -1.417744676e+00 -1.305595811e+00 -2.783577943e-01
-1.685433066e+00 -9.314841437e-01 -9.866903042e-01 -1.628484236e+00
-1.845685362e+00 -1.104514853e+00 -9.974553619e-01 -1.710270221e+00
9.858014137e-01 2.179642069e-01 2.263130178e-01 -1.631744220e+00
7.002621305e-01 -3.989707986e-01 -5.114876317e-01 -1.300690166e+00
2.542448326e-01 -1.737976585e+00 -1.791411951e+00 -1.732910131e+00
1.237556001e-01 -1.805084294e+00 -1.858549303e+00 -1.735221635e+00
7.139834253e-01 -3.983855177e-01 -4.420768692e-01 -9.125623842e-01
-7.159970418e-02 1.497103349e+00 1.387531964e+00 1.416877382e+00
-4.556652460e-02 6.933470584e-01 6.656353103e-01 1.135909993e+00
-1.378799221e-01 6.578275921e-01 6.370429759e-01 1.144995126e+00
4.788641230e-02 -8.404102552e-01 -9.097459046e-01 -2.017193895e-01
-1.814759366e+00 -2.685845654e-01 -3.277443526e-01 1.322376550e+00
-1.241889268e+00 -8.430217199e-01 -8.809542790e-01 6.146779068e-01
-1.314528907e+00 -9.701754401e-01 -9.681421826e-01 6.917875360e-01
-1.799140715e+00 -9.215883213e-01 -9.665958284e-01 1.245060735e+00
7.352078192e-01 1.360102607e+00 1.339853692e+00 1.826136544e-01
7.447045226e-02 2.096681857e-01 1.600175885e-01 -2.449095383e-01
1.804315533e-03 1.882374959e-01 1.704416543e-01 -1.918647984e-01
-2.321358658e+00 -1.747391948e+00 -1.860823356e+00 -8.548229461e-01
-1.872006983e-01 -3.455443575e-01 -3.671479593e-01 3.862589841e-01
2.550481715e-01 -1.536942772e-01 -1.933507469e-01 2.034545765e-01
3.298789237e-01 -9.766623070e-02 -1.372251697e-01 1.819085171e-01
-4.302524525e-02 -5.186800254e-01 -3.750080198e-01 1.905350287e-01
3.732690541e-01 2.937679676e-01 1.717417958e-01 1.083802424e+00
-1.433426335e+00 -1.433039979e+00 -1.440949591e+00 1.067396244e-02
-1.349875223e+00 -1.464929335e+00 -1.507366503e+00 -5.210408993e-02
2.995200307e-01 -7.480115789e-02 -8.453791763e-02 9.734414248e-01
-1.048452071e-02 6.830164819e-01 5.516026410e-01 2.306818847e-01
1.116926393e+00 1.571156001e+00 1.516305724e+00 1.377890913e+00
1.018392735e+00 1.472426502e+00 1.454515663e+00 1.318368189e+00
1.190188052e+00 4.659976627e-01 6.752494281e-01 -1.180401011e-01
-1.357897720e+00 -1.498267471e+00 -1.409597138e+00 -1.634351987e+00
-1.937768708e+00 -1.248995456e+00 -1.176121161e+00 -1.896487345e+00
-1.932321118e+00 -1.138854691e+00 -1.090732959e+00 -1.886196654e+00
-2.050811563e-01 -6.010525977e-01 -6.164892733e-01 -1.031595686e+00
-5.873634676e-01 -2.653383555e-01 -1.869485022e-01 -2.939448748e-01
5.518701464e-01 1.188123584e+00 1.255245105e+00 5.715699315e-01
6.830469717e-01 1.153623188e+00 1.169644764e+00 5.339754707e-01
9.027099177e-02 -2.132380260e-01 -1.403951808e-01 2.153943751e-01
8.715939597e-01 1.964190136e-01 1.468527495e-01 7.064694100e-01
1.476005477e+00 1.077976849e+00 1.070444189e+00 1.015745900e+00
1.545200951e+00 1.011914491e+00 9.939562458e-01 1.054402709e+00
1.241114963e+00 1.072472813e+00 9.900284387e-01 1.543979233e+00
1.117805999e-01 9.570751028e-01 1.055912527e+00 -3.588186740e-01
5.839153657e-01 1.206484072e+00 1.198852875e+00 1.218467199e-01
5.860774576e-01 1.230124532e+00 1.166094195e+00 1.513894322e-01
-2.117150487e-01 1.662717577e-01 1.341500341e-01 -1.798790816e-01
-4.927403450e-01 -3.587810884e-01 -4.546110016e-01 -3.592198375e-01
6.726941957e-02 1.527420870e-01 1.753964635e-01 -6.533551347e-01
6.733534572e-02 1.448059155e-01 1.391154478e-01 -5.262406703e-01
4.415257596e-01 1.381592737e-01 4.526107914e-05 -1.290749072e+00
-6.268486784e-01 4.034215018e-01 3.599389434e-01 1.141813488e+00
-3.789971997e-01 4.972703729e-01 5.074936124e-01 1.410326741e+00
-3.044118128e-01 4.785464733e-01 5.046123911e-01 1.444404083e+00
7.589204601e-01 8.226036858e-01 8.628597772e-01 8.232822250e-01
8.582087201e-01 1.598102927e+00 1.713315061e+00 3.964477921e-01
1.124594052e+00 1.256938808e+00 1.184745000e+00 2.795967056e-01
1.044625841e+00 1.208827328e+00 1.229326843e+00 1.528546378e-01
7.406493268e-01 7.223875808e-01 8.341892909e-01 -2.635329016e-01
-2.756016924e-01 -1.151092619e+00 -9.421550372e-01 -1.030604754e+00
-6.003895147e-01 2.130928603e-01 1.814036184e-01 9.166686858e-01
-6.933245262e-01 2.163919904e-01 1.526718915e-01 8.179675717e-01
-1.306038480e+00 3.940017845e-01 4.592780728e-01 6.693765953e-01
8.363747566e-01 5.732633205e-01 5.681427517e-01 1.812355479e+00
5.397170014e-01 9.737253974e-01 1.011366447e+00 1.484071351e+00
4.219562362e-01 9.767238011e-01 8.934073826e-01 1.560638524e+00
-9.909523991e-02 -7.648244114e-01 -7.235600494e-01 -4.015634797e-01
3.652655139e-01 3.917127363e-01 3.718056850e-01 1.255802925e+00
-3.766189226e-01 6.872856274e-01 7.092875369e-01 9.608709272e-01
-3.786052080e-01 6.747090647e-01 6.891345477e-01 1.004909282e+00
-6.049732247e-01 6.407306784e-01 7.096205804e-01 2.563517915e-01
1.269614844e+00 4.695412405e-01 5.248476028e-01 1.116948147e-01
1.403228162e+00 8.252887133e-01 8.026070867e-01 2.373277390e-01
1.481365975e+00 8.834578239e-01 8.575236414e-01 2.888576018e-01
6.935999523e-01 -2.156521068e-01 -1.819218793e-01 -9.556043580e-02
5.134556164e-01 5.669464692e-01 5.724868288e-01 1.278636264e+00
1.079358633e+00 1.001241379e+00 9.826783358e-01 1.468689174e-02
9.963250447e-01 1.132238184e+00 1.084651287e+00 -8.824772189e-02
-1.429690110e-01 -6.712579786e-01 -6.528737671e-01 -2.404877301e+00
-2.103711914e-01 -1.213469358e+00 -1.270145421e+00 -5.491557480e-01
-8.217435551e-01 -1.544579209e+00 -1.590515263e+00 -2.242365013e-01
-9.204295521e-01 -1.674296745e+00 -1.651653981e+00 -3.739312417e-01
-7.697945640e-01 -6.616724447e-01 -6.103568669e-01 1.336112039e+00
-8.328322672e-01 -7.658205258e-01 -7.291605000e-01 1.086658759e+00
-6.725347755e-01 -5.480104277e-01 -6.015859825e-01 1.533699565e+00
-7.104296025e-01 -5.578294496e-01 -5.518554322e-01 1.511448377e+00
5.275425667e-01 9.074394218e-01 8.990728990e-01 1.130176906e+00
"""
_GOLDEN_PROJECTIONS_TEXT = """
-4.126225667e+02 -1.077725937e+03 1.307724609e+03 -5.633451798e+02
"""
GOLDEN_OUTPUT_RMS = 1.026076659e00
GOLDEN_SAMPLES = tuple(float(v) for v in _GOLDEN_SAMPLES_TEXT.split())
GOLDEN_PROJECTIONS = tuple(float(v) for v in _GOLDEN_PROJECTIONS_TEXT.split())

if __name__ == "__main__":
    main(sys.argv[1:])
