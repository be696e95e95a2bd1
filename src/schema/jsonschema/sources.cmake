# JSON Schema validation (valijson over nlohmann::json). Both are header-only;
# their headers are SYSTEM so that our -Werror -Wshadow -Wconversion does not
# fire inside them.
find_package(valijson REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)

add_library(kc_schema_jsonschema STATIC ${CMAKE_CURRENT_LIST_DIR}/jsonschema.cpp)
target_include_directories(kc_schema_jsonschema PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_include_directories(kc_schema_jsonschema SYSTEM PRIVATE
  $<TARGET_PROPERTY:valijson,INTERFACE_INCLUDE_DIRECTORIES>
  $<TARGET_PROPERTY:nlohmann_json::nlohmann_json,INTERFACE_INCLUDE_DIRECTORIES>)
target_compile_definitions(kc_schema_jsonschema PRIVATE
  $<TARGET_PROPERTY:valijson,INTERFACE_COMPILE_DEFINITIONS>)
target_link_libraries(kc_schema_jsonschema
  PUBLIC kc_base
  PRIVATE kc::warnings kc::sanitizers)
# GCC 12 at -O3 (Release) reports -Wrestrict inside std::string code inlined
# from valijson's headers: a known false positive (GCC bug 105329).
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(kc_schema_jsonschema PRIVATE -Wno-restrict)
endif()
