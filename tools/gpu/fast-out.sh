# Sourced by the GPU scripts that train the 1.1B model (tools/gpu/run-distributed.sh,
# tools/bench/train/run-gpu.sh). A run's final checkpoint is ~13 GB (fp32 master weights, m, v)
# and took 16-28 s to write and fsync on the GPU hosts' disks: a minute of device time every
# three runs, for files these checks never read. Where /dev/shm (memory) has room, runs write
# there instead; afterwards every file but the tensors is copied to the results directory
# (metrics, logs, profiles, trainer-state.json) and the memory is freed.
#   run_dir NAME    -> the directory to pass as --out (under $out, or under /dev/shm)
#   keep_run NAME   -> copy NAME's small files to $out/NAME and free /dev/shm
# Needs $out. TK_FAST_OUT=0 keeps everything under $out.
run_dir() {
  local avail
  avail=$(df --output=avail -B1G /dev/shm 2>/dev/null | tail -1 | tr -d ' ')
  if [ "${TK_FAST_OUT:-1}" != 0 ] && [ -n "$avail" ] && [ "$avail" -ge "${TK_FAST_OUT_MIN_GB:-40}" ] 2>/dev/null; then
    echo "/dev/shm/tk-runs/$1"
  else
    echo "$out/$1"
  fi
}
keep_run() {
  local src=/dev/shm/tk-runs/$1
  [ -d "$src" ] || return 0
  mkdir -p "$out/$1"
  (cd "$src" && find . -type f ! -name '*.safetensors' -exec cp --parents {} "$out/$1/" \;)
  rm -rf "$src"
}
