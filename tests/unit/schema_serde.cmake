# Deserializer and Serializer (src/schema/serde.cpp) end to end against
# tests/support/fake_registry.py (system python3): the three formats, the
# per-id schema cache and failure cache, registry outages, limits.
if(NOT TARGET kc_test_support)
  add_subdirectory(${PROJECT_SOURCE_DIR}/tests/support ${CMAKE_CURRENT_BINARY_DIR}/support)
endif()

kc_add_test(serde_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/serde_test.cpp
  LIBS kc::test_support simdjson::simdjson
  TIMEOUT 120)
