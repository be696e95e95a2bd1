# Avro module (src/schema/avro): decoder, resolution, encoder.
foreach(t avro_decoder_test avro_resolution_test avro_encoder_test)
  kc_add_test(${t} LABEL unit SOURCES ${CMAKE_CURRENT_LIST_DIR}/${t}.cpp LIBS kc_schema_avro)
endforeach()
