#!/usr/bin/env bash
# GPU smoke test: what only a CUDA GPU can check, in a few minutes on one GPU. Run it the day a GPU is lent:
#
#     bash benchmarks/gpu_smoke.sh            # after `make install` (a CUDA build of torch==2.13.0 on that machine)
#
# One line per check (ok / FAILED + the log to read), then a table. Every command here also runs on CPU (CI runs
# the same code paths there); a check that needs the network (the 4-bit LLM from the Hub) says so when it fails.
# Untested here: this machine has no GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp/senti_lit_gpu_smoke}
mkdir -p "$OUT"
TINY="data.limit_train=300 trainer.max_epochs=1 model.mlm_warmup.epochs=1 +trainer.limit_val_batches=5 +trainer.limit_test_batches=5"
declare -a NAMES RESULTS

check() {  # check NAME COMMAND...: run it, keep its log, record ok/FAILED and the seconds
  local name=$1; shift
  local log="$OUT/${name// /_}.log" start=$SECONDS
  if "$@" >"$log" 2>&1; then status=ok; else status="FAILED (see $log)"; fi
  NAMES+=("$name"); RESULTS+=("$status, $((SECONDS - start)) s")
  printf '%-44s %s\n' "$name" "$status"
}

"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU visible to torch")' || exit 1
"$PY" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB, bf16: {torch.cuda.is_bf16_supported()}")'

check "train trainer=gpu (bf16-mixed)"  "$PY" -m senti_lit.train trainer=gpu $TINY hydra.run.dir="$OUT/gpu_bf16"
check "train trainer=gpu_fp16 (16-mixed)" "$PY" -m senti_lit.train trainer=gpu_fp16 $TINY hydra.run.dir="$OUT/gpu_fp16"
check "train model.compile=true"        "$PY" -m senti_lit.train trainer=gpu model.compile=true $TINY hydra.run.dir="$OUT/compile"
check "train llm_lora 4-bit (Hub)"      "$PY" -m senti_lit.train trainer=gpu model=llm_lora model.backbone.load_in_4bit=true \
                                        $TINY hydra.run.dir="$OUT/llm_4bit"
check "predict device=cuda"             "$PY" -m senti_lit.predict artifact="$OUT/gpu_bf16/artifact" device=cuda text=这家酒店很干净
check "predict device=cuda precision=bf16" "$PY" -m senti_lit.predict artifact="$OUT/gpu_bf16/artifact" device=cuda \
                                        precision=bf16 text=这家酒店很干净
check "evaluate device=cuda"            "$PY" -m senti_lit.evaluate "artifacts=[$OUT/gpu_bf16/artifact]" datasets=[demo] \
                                        device=cuda hydra.run.dir="$OUT/evaluate"
check "export, then pipeline on cuda"   bash -c "'$PY' -m senti_lit.export artifact='$OUT/minilm/artifact' output='$OUT/hf' 2>/dev/null \
  || { '$PY' -m senti_lit.train trainer=gpu model=minilm $TINY hydra.run.dir='$OUT/minilm' \
       && '$PY' -m senti_lit.export artifact='$OUT/minilm/artifact' output='$OUT/hf'; } \
  && '$PY' -c \"from transformers import pipeline; print(pipeline('text-classification', model='$OUT/hf', device=0)(['good', 'bad']))\""
# samples/s of senti_lit (trainer=gpu, bf16-mixed) vs transformers.Trainer (bf16) on e5_small: the speed table
check "speed vs Trainer, e5_small bf16" "$PY" benchmarks/speed_bench.py --model e5 --device cuda --limit-train 4000 \
                                        --jobs trainer_best,senti_lit

echo
echo "| check | result |"
echo "|---|---|"
for i in "${!NAMES[@]}"; do echo "| ${NAMES[$i]} | ${RESULTS[$i]} |"; done
grep -h '"samples/s"' benchmarks/results/results.jsonl 2>/dev/null | tail -2 | cut -c1-300
