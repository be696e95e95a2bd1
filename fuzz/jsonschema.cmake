kc_add_fuzzer(jsonschema SOURCES ${CMAKE_CURRENT_LIST_DIR}/jsonschema_fuzz.cpp LIBS kc_schema_jsonschema)
