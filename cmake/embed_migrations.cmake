# Writes a header holding every migration as (version, sql) in order. Invoked at build time:
#   -DOUT=<header> -DFILES=<sql files, sorted> [-DNAMESPACE=personad::migrations]
# SQLite's migrations/*.sql go to personad::migrations (migrations_data.hpp), PostgreSQL's
# migrations/pg/*.sql to personad::pg_migrations (pg_migrations_data.hpp).
if(NOT DEFINED NAMESPACE)
  set(NAMESPACE "personad::migrations")
endif()
set(body "// Generated from SQL migrations by cmake/embed_migrations.cmake. Do not edit.\n#pragma once\n#include <array>\n#include <string_view>\nnamespace ${NAMESPACE} {\nstruct Migration { int version; std::string_view name; std::string_view sql; };\ninline constexpr std::array kAll = {\n")
foreach(f IN LISTS FILES)
  get_filename_component(name "${f}" NAME)
  string(REGEX MATCH "^[0-9]+" num "${name}")
  math(EXPR version "${num}")
  file(READ "${f}" sql)
  string(APPEND body "  Migration{${version}, \"${name}\", R\"personad_sql(${sql})personad_sql\"},\n")
endforeach()
string(APPEND body "};\n}  // namespace ${NAMESPACE}\n")
file(WRITE "${OUT}.tmp" "${body}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
