<?php
// Whether the Authorization header reached PHP (via -pass-header).
header('Content-Type: application/json');
$out = ['executed' => __FILE__];
foreach (['PHP_AUTH_USER', 'PHP_AUTH_PW', 'HTTP_AUTHORIZATION', 'AUTH_TYPE'] as $k) {
    $out[$k] = array_key_exists($k, $_SERVER) ? (string)$_SERVER[$k] : '<unset>';
}
echo json_encode($out, JSON_UNESCAPED_SLASHES);
