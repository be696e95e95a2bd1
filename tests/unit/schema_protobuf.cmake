# Protobuf schema module (src/schema/protobuf). The tests build descriptors
# and payloads with libprotobuf themselves, so they link it too (found,
# GLOBAL, by src/schema/protobuf/sources.cmake).
kc_add_test(protobuf_decoder_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/protobuf_decoder_test.cpp
  LIBS kc_schema_protobuf protobuf::libprotobuf)
