<?php
// Which script ran, and the CGI path variables PHP saw (php-fpm recipe tests).
header('Content-Type: application/json');
$out = ['executed' => __FILE__];
foreach (['SCRIPT_NAME', 'PATH_INFO', 'PATH_TRANSLATED', 'SCRIPT_FILENAME', 'REQUEST_URI',
          'PHP_SELF', 'QUERY_STRING', 'REQUEST_METHOD', 'REDIRECT_URL', 'REDIRECT_STATUS',
          'ORIG_SCRIPT_NAME', 'ORIG_PATH_INFO', 'ORIG_PATH_TRANSLATED', 'ORIG_SCRIPT_FILENAME',
          'DOCUMENT_ROOT', 'HTTP_PROXY'] as $k) {
    $out[$k] = array_key_exists($k, $_SERVER) ? (string)$_SERVER[$k] : '<unset>';
}
echo json_encode($out, JSON_UNESCAPED_SLASHES);
