# Avro: schema parsing, binary decoding (JSON text / kc::Value) with schema
# resolution, and encoding from JSON. See README.md.
add_library(kc_schema_avro STATIC
  ${CMAKE_CURRENT_LIST_DIR}/schema.cpp
  ${CMAKE_CURRENT_LIST_DIR}/decode.cpp
  ${CMAKE_CURRENT_LIST_DIR}/encode.cpp)
target_link_libraries(kc_schema_avro
  PUBLIC kc_base
  PRIVATE kc::warnings kc::sanitizers simdjson::simdjson)
target_include_directories(kc_schema_avro PRIVATE ${PROJECT_SOURCE_DIR}/src)
