{# Text helpers that mirror libstream/src/warehouse.c, so that the Snowflake
   curated tables hold the same values as the SQLite ones. #}

{# hl_normalize(expr): the contract's 'normalize' transform (hl_wh_normalize):
   ASCII letters lower-cased, Latin-1 Supplement and Latin Extended-A letters
   folded to their base letters (ae, th, ss, ij, oe for the ligatures),
   combining marks U+0300..U+036F dropped, everything else kept. TRANSLATE
   removes the characters of its second argument that have no counterpart in
   the third, which drops the combining marks (the second alphabet ends with
   them; they are invisible here). tests/dbt checks these alphabets against
   the fold tables in warehouse.c. #}
{% macro hl_normalize(expr) -%}
  translate(replace(replace(replace(replace(replace(replace(replace(replace(replace({{ expr }}, 'Æ', 'ae'), 'Þ', 'th'), 'ß', 'ss'), 'æ', 'ae'), 'þ', 'th'), 'Ĳ', 'ij'), 'ĳ', 'ij'), 'Œ', 'oe'), 'œ', 'oe'),
    'ABCDEFGHIJKLMNOPQRSTUVWXYZÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝàáâãäåçèéêëìíîïðñòóôõöøùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĐđĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħĨĩĪīĬĭĮįİıĴĵĶķĸĹĺĻļĽľĿŀŁłŃńŅņŇňŉŊŋŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŦŧŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžſ̴̵̶̷̸̡̢̧̨̛̖̗̘̙̜̝̞̟̠̣̤̥̦̩̪̫̬̭̮̯̰̱̲̳̹̺̻̼͇͈͉͍͎̀́̂̃̄̅̆̇̈̉̊̋̌̍̎̏̐̑̒̓̔̽̾̿̀́͂̓̈́͆͊͋͌̕̚ͅ͏͓͔͕͖͙͚͐͑͒͗͛ͣͤͥͦͧͨͩͪͫͬͭͮͯ͘͜͟͢͝͞͠͡',
    'abcdefghijklmnopqrstuvwxyzaaaaaaceeeeiiiidnoooooouuuuyaaaaaaceeeeiiiidnoooooouuuuyyaaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiiijjkkkllllllllllnnnnnnnnnoooooorrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs')
{%- endmacro %}

{# hl_ref_id(expr): the contract's 'reference' transform (hl_wh_reference_id):
   the id of a literal reference, Type/id, a URL ending in Type/id with an
   optional /_history/<version>, urn:uuid:<id> or urn:oid:<id>; NULL for a
   contained reference (#id) or one that ends in '/'. #}
{% macro hl_ref_id(expr) -%}
  case
    when startswith({{ expr }}, 'urn:uuid:') and length({{ expr }}) > 9 then substr({{ expr }}, 10)
    when startswith({{ expr }}, 'urn:oid:') and length({{ expr }}) > 9 then substr({{ expr }}, 9)
    when startswith({{ expr }}, '#') then null
    else nullif(regexp_substr(split_part({{ expr }}, '/_history/', 1), '[^/]*$'), '')
  end
{%- endmacro %}
