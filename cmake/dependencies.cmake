# Every dependency comes from Debian 12 packages (tools/setup.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(FlatBuffers CONFIG REQUIRED)
find_program(FLATC flatc REQUIRED)
find_package(RocksDB CONFIG REQUIRED)  # RocksDB::rocksdb-shared: the static one needs its codecs listed
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
find_package(Boost 1.81.0 CONFIG REQUIRED COMPONENTS json)
find_package(CLI11 CONFIG REQUIRED)
pkg_check_modules(TOMLPP REQUIRED IMPORTED_TARGET tomlplusplus)
find_package(prometheus-cpp CONFIG REQUIRED)  # prometheus-cpp::core, used inside engine/metrics only
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)  # connectors/tokenizer's split patterns only
pkg_check_modules(LIBJWT REQUIRED IMPORTED_TARGET libjwt)  # JWT bearer tokens, in engine/auth only
find_package(ZLIB REQUIRED)  # crc32 of AWS event-stream frames, in connectors/upstream only
if(STATEFOLD_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(STATEFOLD_BUILD_BENCH)
  find_package(benchmark CONFIG REQUIRED)
endif()
