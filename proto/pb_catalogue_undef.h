//  pb_catalogue_undef.h - ends one expansion of pb_catalogue.def (no guard:
//  included after every one)
#undef PB_ENUM
#undef PB_SCHEMA
#undef PB_FIELD
#undef PB_END
#undef PB_ACTION
#undef PB_TYPE
