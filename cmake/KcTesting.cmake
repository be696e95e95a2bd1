include(GoogleTest)

# kc_add_test(name LABEL unit|mock|integration SOURCES a.cpp ... [LIBS ...] [TIMEOUT s])
# One executable per test file; each TEST() becomes its own CTest entry carrying the label,
# so `ctest -L unit` and `ctest -L integration` select them.
function(kc_add_test name)
  cmake_parse_arguments(ARG "" "LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE kc::kc GTest::gtest_main kc::warnings kc::sanitizers ${ARG_LIBS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  gtest_discover_tests(${name}
    PROPERTIES LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT}
    DISCOVERY_TIMEOUT 30)
endfunction()
