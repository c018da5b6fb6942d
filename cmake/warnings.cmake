# Project-wide compiler flags. Applied through statefold_module() so third-party headers stay untouched.
add_library(statefold_flags INTERFACE)
target_compile_options(statefold_flags INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                       -Wold-style-cast -Wcast-align -Wimplicit-fallthrough)
if(STATEFOLD_WERROR)
  target_compile_options(statefold_flags INTERFACE -Werror)
endif()
if(STATEFOLD_FUZZ)
  # Coverage for libFuzzer in every module; only the fuzz targets link the fuzzer's main (tests/fuzz).
  target_compile_options(statefold_flags INTERFACE -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  target_link_options(statefold_flags INTERFACE -fsanitize=address,undefined)
endif()
if(STATEFOLD_SANITIZE)
  target_compile_options(statefold_flags INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                         -fno-sanitize-recover=undefined)
  target_link_options(statefold_flags INTERFACE -fsanitize=address,undefined)
endif()

# statefold_module(NAME SOURCES... [DEPS ...]): one folder = one static library = one namespace.
function(statefold_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(statefold_${name} STATIC ${M_SOURCES})
  add_library(statefold::${name} ALIAS statefold_${name})
  target_include_directories(statefold_${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(statefold_${name} PUBLIC ${M_DEPS} PRIVATE statefold_flags ${M_PRIVATE_DEPS})
endfunction()
