# A toolchain file for the sample: freestanding AArch64 with Debian's cross gcc.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)
# Configure checks compile a static library: nothing to link, no C library needed.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
