# A toolchain file for the sample: freestanding AArch64 with clang and ld.lld.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER clang)
set(CMAKE_C_COMPILER_TARGET aarch64-linux-gnu)
set(CMAKE_ASM_COMPILER clang)
set(CMAKE_ASM_COMPILER_TARGET aarch64-linux-gnu)
set(CMAKE_EXE_LINKER_FLAGS_INIT -fuse-ld=lld)
# Configure checks compile a static library: nothing to link, no C library needed.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
