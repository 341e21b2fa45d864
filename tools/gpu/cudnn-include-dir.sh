#!/usr/bin/env bash
# Prints the include directory of the cuDNN that PyTorch's pip wheel installs on the GPU machines
# (nvidia.cudnn), or nothing: build-kernels.sh passes it to CMake as CUDNN_INCLUDE_DIR (the
# library itself is found in the system paths).
python3 -c 'import nvidia.cudnn, os; print(os.path.join(nvidia.cudnn.__path__[0], "include"))' 2>/dev/null
