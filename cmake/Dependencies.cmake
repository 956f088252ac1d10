# Every dependency comes from the distribution's packages (scripts/setup.sh installs them).
# Nothing is vendored and nothing is downloaded at build time. UCX is cmake/Ucx.cmake's (CUDA builds
# take it from a wheel that scripts/fetch_ucx.sh unpacks).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(GTest REQUIRED)
find_package(benchmark CONFIG REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)

find_program(TANDEM_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

# yaml-cpp 0.7 (Debian 12) exports `yaml-cpp`; 0.8 (Ubuntu 24.04) exports `yaml-cpp::yaml-cpp`.
if(TARGET yaml-cpp::yaml-cpp)
  set(TANDEM_YAML_TARGET yaml-cpp::yaml-cpp)
else()
  set(TANDEM_YAML_TARGET yaml-cpp)
endif()
