file(READ ${IN} text)
file(WRITE ${OUT} "// Generated from events.fbs; do not edit.\n#include \"statefold/schema/schema_text.h\"\nnamespace statefold::schema {\nconst char* const kEventsFbs = R\"statefold_fbs(${text})statefold_fbs\";\n}\n")
