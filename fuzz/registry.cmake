# Confluent's wire-format header (both modes), with a re-encoding check.
kc_add_fuzzer(wire SOURCES ${CMAKE_CURRENT_LIST_DIR}/wire_fuzz.cpp LIBS kc_schema_registry fmt::fmt)
