# Warnings (and sanitizers) as a PRIVATE interface target for the project's own code.
add_library(kc_warnings INTERFACE)
add_library(kc::warnings ALIAS kc_warnings)
target_compile_options(kc_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                             -Wno-sign-conversion -Werror)

add_library(kc_sanitizers INTERFACE)
add_library(kc::sanitizers ALIAS kc_sanitizers)
if(KC_FUZZ)
  # Coverage for libFuzzer on everything of ours; the fuzzer main is linked
  # into the fuzz targets only (fuzz/CMakeLists.txt).
  target_compile_options(kc_sanitizers INTERFACE -fsanitize=fuzzer-no-link,address,undefined
                                                 -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(kc_sanitizers INTERFACE -fsanitize=address,undefined)
elseif(KC_SANITIZE)
  target_compile_options(kc_sanitizers INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer)
  target_link_options(kc_sanitizers INTERFACE -fsanitize=address,undefined)
elseif(KC_TSAN)
  target_compile_options(kc_sanitizers INTERFACE -fsanitize=thread)
  target_link_options(kc_sanitizers INTERFACE -fsanitize=thread)
endif()
