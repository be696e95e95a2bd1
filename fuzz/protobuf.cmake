# Protobuf decoding of arbitrary bytes against a fixed schema (recursive
# messages, maps, oneofs, well-known types); seeds in corpus/protobuf/.
kc_add_fuzzer(protobuf SOURCES ${CMAKE_CURRENT_LIST_DIR}/protobuf_fuzz.cpp LIBS kc_schema_protobuf)
