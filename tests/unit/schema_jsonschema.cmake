# JSON Schema module: our own cases, and the official JSON-Schema-Test-Suite
# (Debian's json-schema-test-suite package) with an explicit known-failures list.
kc_add_test(jsonschema_validator_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/jsonschema_validator_test.cpp
  LIBS kc_schema_jsonschema)

kc_add_test(jsonschema_suite_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/jsonschema_suite_test.cpp
  LIBS kc_schema_jsonschema)
target_compile_definitions(jsonschema_suite_test PRIVATE
  KC_JSON_SCHEMA_TEST_SUITE="/usr/share/json-schema-test-suite"
  KC_JSON_SCHEMA_KNOWN_FAILURES="${CMAKE_CURRENT_LIST_DIR}/jsonschema_suite_known_failures.txt")
find_package(nlohmann_json 3.10 REQUIRED)
target_link_libraries(jsonschema_suite_test PRIVATE nlohmann_json::nlohmann_json)
