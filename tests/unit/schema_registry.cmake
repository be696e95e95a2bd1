# Wire format and Schema Registry client. The client test runs
# tests/support/fake_registry.py (system python3) and the openssl CLI.
if(NOT TARGET kc_test_support)
  add_subdirectory(${PROJECT_SOURCE_DIR}/tests/support ${CMAKE_CURRENT_BINARY_DIR}/support)
endif()

kc_add_test(wire_format_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/wire_format_test.cpp
  LIBS kc_schema_registry)

kc_add_test(schema_registry_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/schema_registry_test.cpp
  LIBS kc_schema_registry kc::test_support spdlog::spdlog fmt::fmt
  TIMEOUT 120)
target_compile_definitions(schema_registry_test PRIVATE
  KC_FAKE_REGISTRY="${PROJECT_SOURCE_DIR}/tests/support/fake_registry.py")
