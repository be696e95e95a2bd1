kc_add_fuzzer(avro SOURCES ${CMAKE_CURRENT_LIST_DIR}/avro_fuzz.cpp LIBS kc_schema_avro)
