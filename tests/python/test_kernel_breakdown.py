"""bench/kernel_breakdown.py (the per-kernel table of an Nsight Compute CSV): stage detection, and
with several predicts in one CSV (a warm-up predict that also timed the cuBLASLt candidates) only
the last predict counted unless --all."""

import importlib.util
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_breakdown():
    spec = importlib.util.spec_from_file_location(
        "kernel_breakdown", REPO_ROOT / "bench" / "kernel_breakdown.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_csv(path, predicts):
    """predicts: lists of (kernel name, ns) in launch order, written as ncu --csv rows."""
    lines = ['"ID","Kernel Name","Metric Name","Metric Value"\n',
             '"0","f32_to_bf16_kernel(int)","gpu__time_duration.sum","500"\n']  # load time
    for kernels in predicts:
        for name, ns in kernels:
            lines.append(f'"0","{name}","gpu__time_duration.sum","{ns:,}"\n')
    path.write_text("".join(lines))


def predict(tuning_ns=0):
    kernels = [("void frt::<unnamed>::resize_pad_normalize_kernel(int)", 1000),
               ("void frt::<unnamed>::resize_pad_normalize_kernel(int)", 1000),  # second view
               ("void frt::<unnamed>::layer_norm_warp_kernel<1>(int)", 2000),
               ("void frt::<unnamed>::embed_gather_kernel(int)", 1000),
               ("nvjet_sm90_tst_256x128(int)", 5000),
               ("void frt::<unnamed>::skinny_gemm_kernel<2, 4>(int)", 3000),
               ("void frt::<unnamed>::skinny_gemm_kernel<2, 4>(int)", 3000)]
    if tuning_ns:
        kernels.insert(4, ("nvjet_sm90_tst_candidate(int)", tuning_ns))
    return kernels


def test_last_predict_only_by_default(tmp_path, capsys):
    csv_path = tmp_path / "ncu.csv"
    write_csv(csv_path, [predict(tuning_ns=900_000), predict()])
    load_breakdown().main(str(csv_path))
    out = capsys.readouterr().out
    assert "2 predict(s), counting the last: 7 kernels, 0.016 ms" in out
    assert "| denoise | skinny_gemm_kernel<...> | 2 | 0.006 | 3.0 |" in out
    assert "| vision | resize_pad_normalize_kernel | 2 | 0.002 | 1.0 |" in out
    assert "candidate" not in out


def test_all_predicts_on_request(tmp_path, capsys):
    csv_path = tmp_path / "ncu.csv"
    write_csv(csv_path, [predict(tuning_ns=900_000), predict()])
    load_breakdown().main(str(csv_path), keep_all=True)
    out = capsys.readouterr().out
    assert "2 predict(s), counting all of them: 15 kernels, 0.932 ms" in out
    assert "| prefix | nvjet_sm90_tst_candidate | 1 | 0.900 | 900.0 |" in out
