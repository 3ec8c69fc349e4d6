<?php
// $_POST as PHP parsed it from a form POST, plus what ran.
header('Content-Type: application/json');
$out = ['executed' => __FILE__, 'CONTENT_LENGTH' => $_SERVER['CONTENT_LENGTH'] ?? '<unset>',
        'CONTENT_TYPE' => $_SERVER['CONTENT_TYPE'] ?? '<unset>'];
foreach ($_POST as $k => $v) {
    $out['post_' . $k] = is_array($v) ? json_encode($v) : (string)$v;
}
echo json_encode($out, JSON_UNESCAPED_SLASHES);
