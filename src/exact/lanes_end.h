/* lanes_end.h: undefine lanes.h's macros (after the last use of one width). */
#undef VU
#undef VI
#undef NL
#undef L
#undef LATTR
#undef MULU
#undef MASK
#undef MULLO
