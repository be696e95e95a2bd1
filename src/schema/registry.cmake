# kc_schema_registry: Confluent's wire format (wire.cpp) and the Schema
# Registry client over libcurl (registry.cpp). Included from
# src/schema/CMakeLists.txt.
find_package(CURL REQUIRED)

add_library(kc_schema_registry STATIC
  ${CMAKE_CURRENT_LIST_DIR}/wire.cpp
  ${CMAKE_CURRENT_LIST_DIR}/registry.cpp
)
target_include_directories(kc_schema_registry PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(kc_schema_registry
  PUBLIC kc_base
  PRIVATE kc::warnings kc::sanitizers CURL::libcurl simdjson::simdjson fmt::fmt spdlog::spdlog
          Threads::Threads)
